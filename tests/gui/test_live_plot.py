"""The light training plot: what it holds and how it paints (ticks: tests/test_ticks.py)."""

from __future__ import annotations

import pytest

from napari_unet.gui.live_plot import LivePlot

pytestmark = pytest.mark.gui


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


def test_fixed_axes_replaced_curves_and_point_markers(qtbot):
    plot = LivePlot("threshold", "Dice", xlim=(0.0, 1.0), ylim=(0.0, 1.02), whole_x=False)
    qtbot.addWidget(plot)
    plot.resize(300, 200)
    plot.set_curve("Dice", [0.1, 0.5, 0.9], [0.2, 0.8, 0.4], color="#4fc3f7")
    plot.set_curve("Dice", [0.2, 0.6], [0.3, 0.7])  # replaces, not appends
    assert plot.curve("Dice") == ([0.2, 0.6], [0.3, 0.7])
    assert plot._ranges() == ((0.0, 1.0), (0.0, 1.02))  # the data does not move the axes
    plot.set_marker("best", 0.6, 0.7)
    plot.set_marker("current", 0.5, color="#9e9e9e")
    assert (plot.marker_x("best"), plot.marker_y("best")) == (0.6, 0.7)
    assert plot.marker_y("current") is None
    assert plot.grab().toImage().width() == 300
