"""Frame ranges, timecode and frame rates.

Frame numbers are the plate's own: ``1001-1100`` stays ``1001-1100`` from ingest to delivery.
Timecode is SMPTE non-drop (``HH:MM:SS:FF``) or drop-frame (``HH:MM:SS;FF``) at the plate's rate.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from fractions import Fraction

#: Most frames one plate or shot may hold: 11.5 hours at 24 fps. A header, a spec or a stray
#: file number that claims more is a mistake or damage, and planning or checking that many
#: frames would not end.
MAX_PLATE_FRAMES = 1_000_000

_RANGE = re.compile(r"^\s*(-?\d+)\s*(?:-\s*(-?\d+)\s*)?$")
_TC = re.compile(r"^(\d{1,2}):(\d{2}):(\d{2})([:;.])(\d{2,3})$")


@dataclass(frozen=True, order=True)
class FrameRange:
    """An inclusive range of frame numbers."""

    first: int
    last: int

    def __post_init__(self) -> None:
        if self.last < self.first:
            raise ValueError(f"frame range {self.first}-{self.last} ends before it starts")

    @classmethod
    def parse(cls, text: str | int) -> FrameRange:
        """Parse ``"1001-1100"`` or ``"1001"``.

        Raises:
            ValueError: the text is not a range, or ends before it starts.
        """
        m = _RANGE.match(str(text))
        if not m:
            raise ValueError(f"frame range {text!r} is not of the form FIRST-LAST, e.g. 1001-1100")
        first = int(m.group(1))
        last = int(m.group(2)) if m.group(2) is not None else first
        return cls(first, last)

    def __len__(self) -> int:
        return self.last - self.first + 1

    def __iter__(self):
        return iter(range(self.first, self.last + 1))

    def __contains__(self, frame: object) -> bool:
        return isinstance(frame, int) and self.first <= frame <= self.last

    def __str__(self) -> str:
        return f"{self.first}-{self.last}"

    def chunks(self, size: int) -> list[FrameRange]:
        """Split into consecutive chunks of at most ``size`` frames."""
        if size < 1:
            raise ValueError(f"chunk size must be at least 1, got {size}")
        return [
            FrameRange(s, min(s + size - 1, self.last))
            for s in range(self.first, self.last + 1, size)
        ]

    def intersect(self, other: FrameRange) -> FrameRange | None:
        lo, hi = max(self.first, other.first), min(self.last, other.last)
        return FrameRange(lo, hi) if lo <= hi else None


def parse_rate(value: str | float | Fraction) -> Fraction:
    """A frame rate as an exact fraction: ``24``, ``"23.976"``, ``"24000/1001"``, 29.97 …

    Common NTSC rates given as decimals map to their exact ``N*1000/1001`` fractions.

    Raises:
        ValueError: not a number, not finite, or not positive.
    """
    try:
        if isinstance(value, Fraction):
            rate = value
        elif isinstance(value, str) and "/" in value:
            num, den = value.split("/", 1)
            rate = Fraction(int(num), int(den))
        else:
            # Through float, not Fraction(str): Fraction("1e999999999") builds a billion-digit
            # integer. Denominators up to 1001 lie far apart next to a float's rounding error.
            rate = Fraction(float(value)).limit_denominator(1001)
        approx = float(rate)
    except (ZeroDivisionError, OverflowError) as exc:  # "24/0", "1e400", inf
        raise ValueError(f"frame rate {value!r} is not a finite number") from exc
    for base in (24, 30, 48, 60, 120):
        ntsc = Fraction(base * 1000, 1001)
        if rate != ntsc and abs(approx - float(ntsc)) < 0.0015:
            return ntsc
    if rate <= 0:
        raise ValueError(f"frame rate must be positive, got {value!r}")
    return rate


def timecode_base(rate: Fraction) -> int:
    """Frames per timecode second: 24 for 23.976, 30 for 29.97, and so on."""
    return int(round(float(rate)))


@dataclass(frozen=True)
class Timecode:
    """A SMPTE timecode as a frame count at an integer base, with a drop-frame flag."""

    frames: int
    base: int
    drop_frame: bool = False

    @classmethod
    def parse(cls, text: str, rate: Fraction) -> Timecode:
        """Parse ``HH:MM:SS:FF`` (``;`` before the frames means drop-frame).

        Raises:
            ValueError: malformed text, or a field out of range for the rate.
        """
        m = _TC.match(text.strip())
        if not m:
            raise ValueError(f"timecode {text!r} is not HH:MM:SS:FF")
        hh, mm, ss, sep, ff = (
            int(m.group(1)),
            int(m.group(2)),
            int(m.group(3)),
            m.group(4),
            int(m.group(5)),
        )
        base = timecode_base(rate)
        drop = sep in ";." and rate.denominator == 1001
        if mm > 59 or ss > 59 or ff >= base:
            raise ValueError(f"timecode {text!r} has a field out of range at {float(rate):.3f} fps")
        total = ((hh * 60 + mm) * 60 + ss) * base + ff
        if drop:
            dropped = 2 * (base // 30)
            minutes = hh * 60 + mm
            total -= dropped * (minutes - minutes // 10)
        return cls(total, base, drop)

    def __add__(self, n: int) -> Timecode:
        return Timecode(self.frames + n, self.base, self.drop_frame)

    def fields(self) -> tuple[int, int, int, int]:
        """``(hours, minutes, seconds, frames)``, wrapping at 24 hours."""
        n = self.frames
        base = self.base
        if self.drop_frame:
            drop = 2 * (base // 30)
            per_10min = base * 600 - drop * 9
            per_min = base * 60 - drop
            d, m = divmod(n, per_10min)
            if m > drop:
                n += drop * 9 * d + drop * ((m - drop) // per_min)
            else:
                n += drop * 9 * d
        ff = n % base
        s = n // base
        return (s // 3600) % 24, (s // 60) % 60, s % 60, ff

    def __str__(self) -> str:
        hh, mm, ss, ff = self.fields()
        sep = ";" if self.drop_frame else ":"
        return f"{hh:02d}:{mm:02d}:{ss:02d}{sep}{ff:02d}"
