"""Tick placement of the plots: pure Python, no display needed."""

from __future__ import annotations

import subprocess
import sys

import pytest

from napari_unet.gui._ticks import nice_range, nice_ticks, tick_text


@pytest.mark.parametrize(
    ("low", "high", "expected"),
    [
        (0.0, 1.0, [0.0, 0.2, 0.4, 0.6, 0.8, 1.0]),
        (1.0, 20.0, [5.0, 10.0, 15.0, 20.0]),
        (0.31, 0.74, [0.4, 0.5, 0.6, 0.7]),
    ],
)
def test_nice_ticks(low, high, expected):
    assert nice_ticks(low, high) == pytest.approx(expected)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ([0.967, 0.972], (0.964, 0.976)),
        ([0.995, 1.0], (0.992, 1.0)),  # never past the bounds
        ([0.5, 0.9], (0.4, 1.0)),
        ([float("nan")], (0.0, 1.0)),  # no data: the bounds
    ],
)
def test_nice_range_zooms_to_the_values(values, expected):
    low, high = nice_range(values, (0.0, 1.0))
    assert (low, high) == pytest.approx(expected)
    ticks = nice_ticks(low, high)
    assert ticks[0] == pytest.approx(low) and ticks[-1] == pytest.approx(high)
    labels = [tick_text(t, ticks) for t in ticks]
    assert len(set(labels)) == len(labels)


def test_ticks_import_no_qt():
    code = (
        "import sys, napari_unet.gui._ticks; "
        "assert not {'qtpy', 'napari'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
