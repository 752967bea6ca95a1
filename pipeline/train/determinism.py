"""Switching torch's deterministic algorithms on for one training run, and back off after it.

``torch.use_deterministic_algorithms`` also sets ``torch._inductor.config.deterministic``, and
importing that config imports all of TorchInductor: about 2 s of CPU in every process that trains
(on a 2-core box, as long as importing torch itself). Nothing in this package compiles with
TorchInductor, so while it is not loaded only the flag that eager kernels read is set. Once
something has loaded it, the public call is used, so that a compiled graph is deterministic too.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import torch

_INDUCTOR_CONFIG = "torch._inductor.config"


def _set(mode: bool, warn_only: bool) -> None:
    if _INDUCTOR_CONFIG in sys.modules:
        torch.use_deterministic_algorithms(mode, warn_only=warn_only)
    else:
        # the eager half of torch.use_deterministic_algorithms (torch/__init__.py, torch 2.13)
        torch._C._set_deterministic_algorithms(mode, warn_only=warn_only)


@contextmanager
def deterministic_algorithms(enabled: bool, *, warn_only: bool = True) -> Iterator[None]:
    """Inside the block, torch uses deterministic algorithms when ``enabled`` (an op that has none
    warns when ``warn_only``, else raises). The previous mode and warn-only flag come back after
    it, on error too. ``enabled=False`` leaves the mode as it is."""
    prev = torch.are_deterministic_algorithms_enabled()
    prev_warn = torch.is_deterministic_algorithms_warn_only_enabled()
    if enabled:
        _set(True, warn_only)
    try:
        yield
    finally:
        if enabled:
            _set(prev, prev_warn)
