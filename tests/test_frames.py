from fractions import Fraction

import pytest

from pipeline.frames import FrameRange, Timecode, parse_rate


def test_frame_range_parse_and_chunks():
    r = FrameRange.parse("1001-1010")
    assert len(r) == 10 and 1005 in r and 1011 not in r
    assert [str(c) for c in r.chunks(4)] == ["1001-1004", "1005-1008", "1009-1010"]
    assert FrameRange.parse(7) == FrameRange(7, 7)


@pytest.mark.parametrize("bad", ["1010-1001", "a-b", "1001:1010", ""])
def test_frame_range_bad(bad):
    with pytest.raises(ValueError):
        FrameRange.parse(bad)


def test_rates_exact():
    assert parse_rate("23.976") == Fraction(24000, 1001)
    assert parse_rate(29.97) == Fraction(30000, 1001)
    assert parse_rate("25") == 25
    assert parse_rate("24000/1001") == Fraction(24000, 1001)


def test_timecode_non_drop_roundtrip():
    tc = Timecode.parse("01:00:00:00", Fraction(24))
    assert tc.frames == 86400
    assert str(tc + 25) == "01:00:01:01"


def test_timecode_drop_frame():
    rate = Fraction(30000, 1001)
    tc = Timecode.parse("00:00:59;29", rate)
    assert str(tc + 1) == "00:01:00;02"  # frames 00 and 01 are dropped at the minute
    tc10 = Timecode.parse("00:09:59;29", rate)
    assert str(tc10 + 1) == "00:10:00;00"  # not at every tenth minute
    assert Timecode.parse(str(tc + 1), rate).frames == tc.frames + 1


def test_timecode_out_of_range():
    with pytest.raises(ValueError):
        Timecode.parse("00:00:00:24", Fraction(24))
