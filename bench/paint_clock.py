"""What the key-to-paint benches share: when each screen update was painted, and percentiles.

A paint counts once its update is turned into the terminal's escape sequences
(the work a real terminal write does; only the write itself is skipped).
"""

from __future__ import annotations

import time
from typing import Any


def record_paints(app: Any) -> list[float]:
    """From now on, the ``perf_counter`` time of every screen update ``app`` paints."""
    paints: list[float] = []
    show = app._display

    def display(screen, update) -> None:  # type: ignore[no-untyped-def]
        show(screen, update)
        if update is not None:
            update.render_segments(app.console)
            paints.append(time.perf_counter())

    app._display = display
    return paints


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(fraction * (len(ordered) - 1)))]
