"""The light training plot: tick placement and what it holds."""

from __future__ import annotations

import pytest

from napari_unet.gui.live_plot import LivePlot, nice_ticks

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
