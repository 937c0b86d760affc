"""Round axis ticks and ranges for the plots, without Qt (so they test without a display)."""

from __future__ import annotations

import math


def _nice_step(low: float, high: float, count: int) -> float:
    raw = (high - low) / max(count - 1, 1)
    magnitude = 10 ** math.floor(math.log10(raw))
    return min((m * magnitude for m in (1, 2, 5, 10)), key=lambda s: abs(s - raw))


def nice_ticks(low: float, high: float, count: int = 5) -> list[float]:
    """Round tick positions within ``[low, high]``, about ``count`` (steps 1, 2 or 5 x 10^k)."""
    if not (math.isfinite(low) and math.isfinite(high)) or high <= low:
        return [low] if math.isfinite(low) else []
    step = _nice_step(low, high, count)
    first = math.ceil(low / step - 1e-9) * step
    ticks = []
    value = first
    while value <= high + 1e-9 * step:
        ticks.append(round(value, 12))
        value += step
    return ticks


def nice_range(
    values: list[float],
    bounds: tuple[float, float],
    *,
    min_span: float = 0.01,
    count: int = 5,
) -> tuple[float, float]:
    """Axis limits that hold ``values``, end on round ticks and stay within ``bounds``.

    Parameters
    ----------
    values
        The data; non-finite values are ignored.
    bounds
        The widest range (``(0, 1)`` for Dice); also the answer without data.
    min_span
        Narrowest range shown, so that noise in the fifth decimal is not
        blown up to the whole axis.
    count
        About how many ticks the range should hold.

    Returns
    -------
    tuple of float
        ``(low, high)``, multiples of the tick step of :func:`nice_ticks`.
    """
    finite = [v for v in values if math.isfinite(v)]
    if not finite:
        return bounds
    low, high = min(finite), max(finite)
    span = max(high - low, min_span)
    low, high = low - 0.1 * span, high + 0.1 * span  # no point on the frame
    if high - low < min_span:
        middle = (low + high) / 2
        low, high = middle - min_span / 2, middle + min_span / 2
    step = _nice_step(low, high, count)
    low = max(bounds[0], math.floor(low / step + 1e-9) * step)
    high = min(bounds[1], math.ceil(high / step - 1e-9) * step)
    return round(low, 12), round(high, 12)


def tick_text(tick: float, ticks: list[float]) -> str:
    """Label ``tick`` with as many decimals as the step between ``ticks`` needs."""
    if len(ticks) < 2:
        return f"{tick:.3g}"
    step = abs(ticks[1] - ticks[0])
    decimals = max(0, -math.floor(math.log10(step) + 1e-9))
    return f"{tick:.{decimals}f}"
