"""The deterministic-algorithms switch: set inside the block, restored after, TorchInductor left
unloaded."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from pipeline.train.determinism import deterministic_algorithms


def _mode() -> tuple[bool, bool]:
    return (
        torch.are_deterministic_algorithms_enabled(),
        torch.is_deterministic_algorithms_warn_only_enabled(),
    )


@pytest.mark.parametrize("before", [(False, False), (True, False), (True, True)])
def test_sets_the_mode_and_restores_it(before) -> None:
    saved = _mode()
    torch.use_deterministic_algorithms(before[0], warn_only=before[1])
    try:
        with deterministic_algorithms(True):
            assert _mode() == (True, True)
        assert _mode() == before
        with (
            pytest.raises(RuntimeError, match="boom"),
            deterministic_algorithms(True, warn_only=False),
        ):
            assert _mode() == (True, False)
            raise RuntimeError("boom")
        assert _mode() == before
        with deterministic_algorithms(False):
            assert _mode() == before
    finally:
        torch.use_deterministic_algorithms(saved[0], warn_only=saved[1])


def test_eager_kernels_see_the_mode() -> None:
    # in deterministic mode torch.empty fills new float memory with NaN
    # (torch.utils.deterministic.fill_uninitialized_memory), an eager effect of the flag
    with deterministic_algorithms(True):
        assert torch.isnan(torch.empty(1024)).all()


def test_does_not_import_torchinductor() -> None:
    code = (
        "import sys, torch\n"
        "from pipeline.train.determinism import deterministic_algorithms\n"
        "with deterministic_algorithms(True):\n"
        "    assert torch.are_deterministic_algorithms_enabled()\n"
        "assert not torch.are_deterministic_algorithms_enabled()\n"
        "print('torch._inductor' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True, timeout=120
    )
    assert out.stdout.strip() == "False", out.stderr
