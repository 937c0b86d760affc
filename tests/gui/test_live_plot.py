"""The light training plot: tick placement and what it holds."""

from __future__ import annotations

import pytest

from napari_unet.gui.live_plot import LivePlot, nice_range, nice_ticks, tick_text

pytestmark = pytest.mark.gui


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


def test_points_markers_and_painting(qtbot):
    plot = LivePlot("epoch", "loss", right_ylabel="Dice")
    qtbot.addWidget(plot)
    plot.resize(300, 200)
    plot.append("loss", 1, 0.9, color="#ffb74d")
    plot.append("loss", 2, 0.5, color="#ffb74d")
    plot.append("Dice", 1, float("nan"), right=True)
    plot.set_marker("best", 2)
    assert plot.curve("loss") == ([1.0, 2.0], [0.9, 0.5])
    assert plot.marker_x("best") == 2.0
    image = plot.grab().toImage()  # paints without error, NaN points skipped
    assert image.width() == 300
    plot.clear_curves()
    assert plot.curve("loss") == ([], []) and plot.marker_x("best") is None


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


def test_right_axis_zooms_only_when_asked(qtbot):
    fixed = LivePlot("epoch", "loss", right_ylabel="Dice")
    zoomed = LivePlot("epoch", "loss", right_ylabel="Dice", zoom_right=True)
    for plot in (fixed, zoomed):
        qtbot.addWidget(plot)
        plot.append("Dice", 1, 0.967, right=True)
        plot.append("Dice", 2, 0.972, right=True)
    assert fixed.right_range() == (0.0, 1.0)
    assert zoomed.right_range() == pytest.approx((0.964, 0.976))
    assert zoomed.right_ticks()[:2] == ["0.964", "0.966"]
