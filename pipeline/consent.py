"""Consent records: who granted the use of a performer's likeness, for what, until when.

Fine-tuning and synthesis refuse to run without a valid record. The minimum form, which other
tools write::

    actor: jdoe                 # must equal the shot's actor.id
    granted_by: "Jane Doe"      # the performer, or their estate
    scope: [de-aging]           # the uses granted, free text
    expires: 2027-12-31
    reference: "contract 2026-114"
"""

from __future__ import annotations

import datetime as dt
import hashlib
from dataclasses import dataclass
from pathlib import Path

from pipeline.config import read_yaml
from pipeline.errors import ConfigError, ConsentError

KNOWN_KEYS = {"actor", "granted_by", "scope", "expires", "reference", "notes", "granted_on"}


@dataclass(frozen=True)
class ConsentRecord:
    """A validated consent record.

    Attributes:
        sha256: digest of the record file, for provenance.
    """

    path: Path
    actor: str
    granted_by: str
    scope: tuple[str, ...]
    expires: dt.date
    reference: str
    sha256: str

    @property
    def consent_id(self) -> str:
        return f"{self.reference} ({self.sha256[:12]})"


def load_consent(
    path: Path | None, actor_id: str, *, use: str | None = None, today: dt.date | None = None
) -> ConsentRecord:
    """Load and check a consent record for ``actor_id``.

    Args:
        path: the record (from the shot's ``actor.consent``), or None.
        actor_id: the shot's ``actor.id``.
        use: the use the render is for (the profile's ``use``), which the record's ``scope``
            must list; None checks no scope.
        today: the date to check expiry against (UTC today by default): the frames are made
            and delivered today.

    Raises:
        ConsentError: missing, unreadable, incomplete, for another actor, expired, or not
            covering ``use``.
    """
    fix = "add a signed consent record (actor, granted_by, scope, expires, reference) and name it in actor.consent"
    if path is None:
        raise ConsentError(
            f"actor {actor_id!r} has no consent record (actor.consent is not set)", fix
        )
    path = Path(path)
    if not path.is_file():
        raise ConsentError(f"consent record {path} does not exist", fix)
    try:
        data = read_yaml(path)
    except ConfigError as exc:
        raise ConsentError(f"consent record {path} is unreadable: {exc.problems[0]}", fix) from exc
    if not isinstance(data, dict):
        raise ConsentError(f"consent record {path} is not a mapping of keys", fix)
    problems = [f"unknown key {k!r}" for k in data if k not in KNOWN_KEYS]
    for key in ("actor", "granted_by", "scope", "expires", "reference"):
        if data.get(key) in (None, "", []):
            problems.append(f"{key} is missing or empty")
    if problems:
        raise ConsentError(f"consent record {path} is invalid: " + "; ".join(problems), fix)
    if str(data["actor"]) != actor_id:
        raise ConsentError(
            f"consent record {path} is for actor {data['actor']!r}, not {actor_id!r}",
            "name the record that covers this actor in actor.consent",
        )
    scope = data["scope"]
    scope = tuple(str(s) for s in (scope if isinstance(scope, list) else [scope]))
    expires = data["expires"]
    if isinstance(expires, str):
        try:
            expires = dt.date.fromisoformat(expires)
        except ValueError as exc:
            raise ConsentError(
                f"consent record {path}: expires {expires!r} is not a date YYYY-MM-DD", fix
            ) from exc
    if isinstance(expires, dt.datetime):
        expires = expires.date()
    if not isinstance(expires, dt.date):
        raise ConsentError(
            f"consent record {path}: expires {expires!r} is not a date YYYY-MM-DD", fix
        )
    if use is not None and use not in scope:
        raise ConsentError(
            f"consent record {path} grants {', '.join(scope)}, not {use!r} (the profile's use)",
            f"obtain consent for {use!r} from the performer or their estate and add it to the "
            "record's scope, or render with a profile for a use the record grants",
        )
    today = today or dt.datetime.now(dt.UTC).date()
    if expires < today:
        raise ConsentError(
            f"consent for actor {actor_id!r} ({data['reference']}) expired on {expires.isoformat()}",
            "renew the consent with the performer or their estate and update the record",
        )
    return ConsentRecord(
        path=path.resolve(),
        actor=actor_id,
        granted_by=str(data["granted_by"]),
        scope=scope,
        expires=expires,
        reference=str(data["reference"]),
        sha256=hashlib.sha256(path.read_bytes()).hexdigest(),
    )
