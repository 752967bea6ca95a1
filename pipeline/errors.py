"""Named errors for every boundary of the pipeline.

Every error says what was wrong and how to fix it. The CLI prints ``str(err)`` and exits with
``err.exit_code``; nothing is written to a final path when one is raised.
"""

from __future__ import annotations

#: Exit statuses of the ``likeness`` command line, one per kind of failure (README, "Exit
#: status"). When several shots fail, the command exits with the highest.
EXIT_OK = 0
EXIT_FAILED = 1  # a shot did not complete, and no stage recorded why (e.g. the scheduler)
EXIT_BAD_INPUT = 2  # a spec, profile, plate, reference or argument is wrong: fix the input
EXIT_CONSENT = 3  # no valid consent for the use: nothing synthetic may be made
EXIT_DISK_FULL = 4  # the disk filled: free space and rerun; nothing partial was left
EXIT_INTERNAL = 5  # an error likeness did not expect: a bug; the log has the traceback
EXIT_UNVERIFIED = 6  # `likeness verify`: credentials missing, broken, tampered or untrusted


class LikenessError(Exception):
    """Base of every error the pipeline raises on purpose.

    Args:
        message: what was wrong, naming the value received.
        hint: how to fix it. Appended to the message as ``fix: ...``.
    """

    exit_code = EXIT_BAD_INPUT

    def __init__(self, message: str, hint: str | None = None) -> None:
        # A path with bytes invalid in UTF-8 reaches Python as lone surrogates, which no UTF-8
        # stream (stderr under capture, log files, JSON) can encode: show them as \udcff escapes.
        message = _printable(message)
        hint = _printable(hint) if hint else hint
        self.message = message
        self.hint = hint
        super().__init__(message if not hint else f"{message}\n  fix: {hint}")


class ConfigError(LikenessError):
    """A profile or stage config is invalid: unknown key, wrong type, out of range.

    ``problems`` holds every problem found, each as ``file: key: what``.
    """

    def __init__(self, problems: list[str], hint: str | None = None) -> None:
        self.problems = list(problems)
        head = f"{len(self.problems)} problem(s) in config:\n" + "\n".join(
            f"  - {p}" for p in self.problems
        )
        super().__init__(head, hint)


class ShotSpecError(ConfigError):
    """A shot spec YAML is invalid. Lists every problem at once, each with its file and key."""


class DecodeError(LikenessError):
    """A media file could not be read: corrupt, truncated, or not what its name says."""


class EncodeError(LikenessError):
    """A media file could not be written (codec missing, disk full, bad parameters)."""


class MissingFramesError(DecodeError):
    """An image sequence or frame range has holes.

    Args:
        missing: the missing frame numbers, sorted.
    """

    def __init__(self, pattern: str, missing: list[int], hint: str | None = None) -> None:
        self.missing = sorted(missing)
        shown = _compact_ranges(self.missing)
        super().__init__(
            f"{len(self.missing)} missing frame(s) in {pattern}: {shown}",
            hint
            or "render or restore the listed frames, or narrow plate.frames to a complete range",
        )


class ColorError(LikenessError):
    """An OpenColorIO config or colour-space name could not be used."""


class NoFaceError(LikenessError):
    """No usable face was found where one was needed."""


class IdentityError(LikenessError):
    """Several faces were found and the performer to follow is ambiguous."""


class FaceLostError(NoFaceError):
    """The performer's face is missing from part of the shot (left the frame, turned or hidden)."""


class WeightsMissingError(LikenessError):
    """A model weights file is not provisioned. Weights are never downloaded at run time."""


class ConsentError(LikenessError):
    """The actor's consent record is missing, invalid, expired or out of scope."""

    exit_code = EXIT_CONSENT


class CredentialsError(LikenessError):
    """Content credentials (C2PA) cannot be made: the signing certificate or key is missing,
    unreadable, expired, not for signing, or the signing itself failed."""


class EngineUnavailableError(LikenessError):
    """A requested inference backend cannot run here; the hint says what to install."""


class EngineParityError(LikenessError):
    """An inference engine's output differs from the torch reference beyond the gate.

    Args:
        psnr_db: the measured PSNR against the reference.
        threshold_db: the gate it failed.
    """

    def __init__(self, backend: str, psnr_db: float, threshold_db: float) -> None:
        self.psnr_db = psnr_db
        self.threshold_db = threshold_db
        super().__init__(
            f"{backend} engine fails the parity gate: PSNR {psnr_db:.2f} dB < {threshold_db:.1f} dB "
            "against the torch reference on golden frames",
            "rebuild the engine at a higher precision (fp32), or force another backend",
        )


class EngineBuildError(LikenessError):
    """An inference engine could not be exported, built, deserialized or run."""


class EngineInputError(EngineBuildError):
    """Arrays passed to an engine do not match its input spec (names, rank, dtype, batch)."""


class UnsupportedOpsError(EngineBuildError):
    """An exported graph holds operators outside the TensorRT allow-list.

    Args:
        offenders: one line per offending operator, e.g. ``GridSample (5-D input): node gs_0``.
    """

    def __init__(self, offenders: list[str], hint: str | None = None) -> None:
        self.offenders = list(offenders)
        super().__init__(
            f"{len(self.offenders)} operator(s) outside the TensorRT allow-list:\n"
            + "\n".join(f"  - {o}" for o in self.offenders),
            hint
            or "rewrite the offending layers with supported ops (4-D grid_sample, no custom ops) "
            "and export again",
        )


class CompositeError(LikenessError):
    """Compositing inputs are inconsistent: wrong shape, dtype, size or non-finite values."""


class ReportError(LikenessError):
    """A QC report could not be built from the data given (bad image, mismatched series)."""


class CheckpointError(LikenessError):
    """A checkpoint is missing, corrupt, or does not match its recorded hash."""


class SchemaError(LikenessError):
    """A sidecar file is unreadable, or has a schema version this code cannot read or upgrade."""


class StageError(LikenessError):
    """A pipeline stage could not run: its inputs are missing or inconsistent."""

    exit_code = EXIT_FAILED


class WorkdirError(LikenessError):
    """A path would leave the workdir, or the workdir is unusable."""


class PreflightError(LikenessError):
    """A shot failed its preflight: every problem found before any stage ran.

    Args:
        spec: the shot spec.
        problems: the named errors found, each with its file and fix.
    """

    def __init__(self, spec: object, problems: list[LikenessError]) -> None:
        self.spec = spec
        self.problems = list(problems)
        lines = []
        for p in self.problems:
            lines.append(f"  - {type(p).__name__}: {p.message}")
            if p.hint:
                lines.append(f"    fix: {p.hint}")
        super().__init__(
            f"shot spec {spec}: {len(self.problems)} problem(s); nothing has run:\n"
            + "\n".join(lines)
        )

    @property
    def exit_code(self) -> int:  # type: ignore[override]
        """The most serious problem's exit code."""
        return max((p.exit_code for p in self.problems), default=EXIT_BAD_INPUT)


class FarmError(LikenessError):
    """A farm operation was refused: scheduler, worker, adapter, timeline or rerun arguments."""


class DiskFullError(LikenessError):
    """The disk filled (or a quota or file-size limit was hit) while writing an output.

    Nothing partial was left at the final path, and the temporary was removed.
    """

    exit_code = EXIT_DISK_FULL


class EvalError(LikenessError):
    """The harness cannot run on this clip (too few tracked frames, bad arguments)."""


class CorpusError(LikenessError):
    """The training corpus or its index is missing, malformed or too small."""


class FinetuneInputError(LikenessError):
    """The references given to fine-tuning are unusable (none, wrong shape or size)."""


class RetargetError(LikenessError):
    """Landmark arrays for retargeting have the wrong shape or are degenerate."""


class WarpInputError(LikenessError):
    """Warp inputs have the wrong shapes or no references."""


class LandmarkShapeError(LikenessError):
    """A landmark array does not have the 68×2 (or B×68×2) shape the rasterizer needs."""


class EmbedderInputError(LikenessError):
    """E's inputs do not have the B×K×3×H×W shape it needs."""


class GeneratorInputError(LikenessError):
    """G's inputs have the wrong shape or are missing the warp image it was built for."""


class DiscriminatorInputError(LikenessError):
    """D's inputs have the wrong shapes."""


def _printable(text: str) -> str:
    """``text`` with lone surrogates (undecodable path bytes) escaped, so it encodes as UTF-8."""
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _compact_ranges(values: list[int]) -> str:
    """Format sorted ints as ``1001-1003, 1007``."""
    if not values:
        return "(none)"
    parts: list[str] = []
    start = prev = values[0]
    for v in values[1:]:
        if v == prev + 1:
            prev = v
            continue
        parts.append(f"{start}-{prev}" if prev != start else f"{start}")
        start = prev = v
    parts.append(f"{start}-{prev}" if prev != start else f"{start}")
    return ", ".join(parts)
