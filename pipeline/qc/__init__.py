"""Quality-control outputs: review frames, plots and reports looked at before approval.

One module per stage, e.g. ``tracking`` (landmark overlays, confidence/jitter plot).
"""

from __future__ import annotations
