"""Print how many fuzz iterations ran, per property and per reader, at the end of the session."""

from __future__ import annotations

from typing import Any

from tests.fuzz.mutate import COUNTS


def pytest_terminal_summary(terminalreporter: Any) -> None:
    if not COUNTS:
        return
    tr = terminalreporter
    tr.section("fuzz iterations")
    total = 0
    for name, entry in sorted(COUNTS.items()):
        total += entry["iterations"]
        line = f"{name}: {entry['iterations']} in {entry['seconds']:.1f} s"
        if entry.get("outcomes"):
            line += f" ({entry['outcomes']})"
        tr.write_line(line)
    tr.write_line(f"total: {total} iterations")
