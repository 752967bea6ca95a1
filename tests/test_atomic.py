import os
import signal
import subprocess
import sys
import textwrap

import pytest

from pipeline.atomic import atomic_dir, atomic_path, sweep_temporaries, write_json


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
