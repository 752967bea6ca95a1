"""likeness: few-shot neural talking-head face replacement for film and TV post-production.

``pipeline`` is the library: pure functions and classes on arrays, tensors and paths. It never
imports luigi; the Luigi glue lives in ``tasks``.
"""

from __future__ import annotations

__version__ = "0.1.0"
