"""Shared fixtures: tiny generated media only; no test reads the real media kept beside the repo."""

from __future__ import annotations

import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")


@pytest.fixture(autouse=True)
def _one_thread():
    try:
        import torch

        torch.set_num_threads(1)
    except ImportError:  # torch is a dependency; guard only for partial installs
        pass
    yield
