import errno
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pipeline.atomic import atomic_dir, atomic_path, sweep_temporaries, write_json
from pipeline.errors import DiskFullError


def test_atomic_path_leaves_nothing_on_error(tmp_path):
    final = tmp_path / "out.bin"
    with pytest.raises(RuntimeError):
        with atomic_path(final) as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("boom")
    assert not final.exists()
    assert list(tmp_path.iterdir()) == []


def test_atomic_dir_renames_whole(tmp_path):
    final = tmp_path / "seq"
    with atomic_dir(final) as tmp:
        (tmp / "a.0001.exr").write_bytes(b"1")
        assert not final.exists()
    assert (final / "a.0001.exr").read_bytes() == b"1"
    with atomic_dir(final) as tmp:
        (tmp / "b").write_bytes(b"2")
    assert sorted(p.name for p in final.iterdir()) == ["b"]
    assert [p.name for p in tmp_path.iterdir()] == ["seq"]


def test_sigkill_mid_write_leaves_no_final_file(tmp_path):
    code = textwrap.dedent(
        f"""
        import os, signal, time
        from pipeline.atomic import atomic_dir
        with atomic_dir({str(tmp_path / "seq")!r}) as tmp:
            for i in range(5):
                (tmp / f'f.{{i}}').write_bytes(b'x' * 1000)
            os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    r = subprocess.run([sys.executable, "-c", code], cwd=os.getcwd())
    assert r.returncode == -signal.SIGKILL
    assert not (tmp_path / "seq").exists()
    leftovers = sweep_temporaries(tmp_path)
    assert len(leftovers) == 1 and not any(tmp_path.iterdir())


def test_write_json(tmp_path):
    p = write_json(tmp_path / "x" / "m.json", {"b": 1, "a": 2})
    assert p.read_text().startswith('{\n  "a": 2')


def _statvfs(bavail: int):
    real = os.statvfs

    def fake(path):
        st = real(path)
        return os.statvfs_result((*st[:4], bavail, *st[5:]))

    return fake


@pytest.mark.parametrize(
    "exc",
    [
        OSError(errno.ENOSPC, "No space left on device"),
        OSError(errno.EFBIG, "File too large"),  # RLIMIT_FSIZE
        RuntimeError('Failed to write pixel data to image file "x.exr". No space left on device.'),
    ],
    ids=["ENOSPC", "EFBIG", "text"],
)
def test_a_full_disk_is_a_named_error_and_leaves_nothing(tmp_path, exc):
    for ctx in (atomic_path(tmp_path / "out.bin"), atomic_dir(tmp_path / "seq")):
        with pytest.raises(DiskFullError, match="disk full while writing") as info:
            with ctx as tmp:
                (tmp / "f" if tmp.is_dir() else tmp).write_bytes(b"half")
                raise exc
        assert "point --workdir at a larger one" in str(info.value)
        assert info.value.__cause__ is exc
    assert list(tmp_path.iterdir()) == []


def test_an_opaque_write_error_on_a_full_volume_is_disk_full(tmp_path, monkeypatch):
    """torch.save says "unexpected pos", cv2.imwrite returns False: the volume tells."""
    import pipeline.atomic

    def write():
        with atomic_path(tmp_path / "c.pt") as tmp:
            tmp.write_bytes(b"half")
            raise RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 832")

    with pytest.raises(RuntimeError, match="unexpected pos"):  # room left: not a full disk
        write()
    monkeypatch.setattr(pipeline.atomic.os, "statvfs", _statvfs(0))
    with pytest.raises(DiskFullError, match="No space left on device"):
        write()
    assert list(tmp_path.iterdir()) == []


def test_sweep_removes_a_replaced_copy_left_aside(tmp_path):
    old = tmp_path / ".v001.old.tmp-123-abcd1234"
    (old / "exr").mkdir(parents=True)
    mine, other = tmp_path / ".v001.tmp-1-aaaaaaaa", tmp_path / ".v002.tmp-1-bbbbbbbb"
    mine.mkdir()
    other.mkdir()
    assert sorted(p.name for p in sweep_temporaries(tmp_path, "v001")) == [old.name, mine.name]
    assert [p.name for p in tmp_path.iterdir()] == [other.name]
