"""A small matplotlib canvas for the widgets' curves (loss, Dice, Dice vs threshold).

One figure per widget, drawn with the Qt Agg backend and redrawn with
``draw_idle`` so that several updates in one event-loop turn cost one redraw.
No pyplot: pyplot keeps global figures, and a widget's figure must die with it.
"""

from __future__ import annotations

from collections.abc import Sequence

from matplotlib.backends.backend_qtagg import FigureCanvasQTAgg
from matplotlib.figure import Figure
from qtpy.QtWidgets import QSizePolicy

# napari's default dark theme; the curves stay readable on the light theme too.
_BACKGROUND = "#262930"
_FOREGROUND = "#d6d0ce"


class CurvePlot(FigureCanvasQTAgg):
    """Named curves on one or two y axes sharing an x axis.

    Parameters
    ----------
    xlabel, ylabel
        Axis titles of the x axis and the left y axis.
    right_ylabel
        Title of a second y axis on the right (for a curve with another unit,
        such as validation Dice next to a training loss); ``None`` for none.
    right_ylim
        Fixed limits of the right axis (Dice lives in [0, 1]).
    """

    def __init__(
        self,
        xlabel: str,
        ylabel: str,
        *,
        right_ylabel: str | None = None,
        right_ylim: tuple[float, float] | None = None,
        parent=None,
    ) -> None:
        figure = Figure(figsize=(3.2, 2.2), dpi=90, facecolor=_BACKGROUND)
        super().__init__(figure)
        # Margins in pixels, applied on resize, not a layout engine: "tight"
        # layout measures every text on each draw and tripled the redraw cost.
        self._margins = (44, 44 if right_ylabel else 12, 40, 8)  # left, right, bottom, top
        self.setParent(parent)
        self.setMinimumHeight(160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self.axes = figure.add_subplot(111)
        self._style(self.axes, xlabel, ylabel)
        self.right_axes = None
        if right_ylabel is not None:
            self.right_axes = self.axes.twinx()
            self._style(self.right_axes, None, right_ylabel)
            if right_ylim is not None:
                self.right_axes.set_ylim(*right_ylim)
        self._right_ylim = right_ylim
        self._lines: dict = {}
        self._markers: dict = {}

    def resizeEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Keep the axes' margins fixed in pixels whatever the widget's size."""
        width, height = max(event.size().width(), 1), max(event.size().height(), 1)
        left, right, bottom, top = self._margins
        self.figure.subplots_adjust(
            left=min(0.45, left / width),
            right=max(0.55, 1 - right / width),
            bottom=min(0.45, bottom / height),
            top=max(0.55, 1 - top / height),
        )
        super().resizeEvent(event)

    def color_ylabels(self, left: str, right: str | None = None) -> None:
        """Colour the y-axis titles like their curves (a legend that takes no room)."""
        self.axes.yaxis.label.set_color(left)
        if right is not None and self.right_axes is not None:
            self.right_axes.yaxis.label.set_color(right)

    @staticmethod
    def _style(axes, xlabel: str | None, ylabel: str) -> None:
        axes.set_facecolor(_BACKGROUND)
        if xlabel is not None:
            axes.set_xlabel(xlabel, color=_FOREGROUND, fontsize=8)
        axes.set_ylabel(ylabel, color=_FOREGROUND, fontsize=8)
        axes.tick_params(colors=_FOREGROUND, labelsize=7)
        for spine in axes.spines.values():
            spine.set_color(_FOREGROUND)

    def _axes_for(self, right: bool):
        return self.right_axes if right and self.right_axes is not None else self.axes

    def set_curve(
        self,
        key: str,
        xs: Sequence[float],
        ys: Sequence[float],
        *,
        right: bool = False,
        color: str | None = None,
        style: str = "-",
    ) -> None:
        """Create or replace the curve ``key`` and schedule a redraw."""
        axes = self._axes_for(right)
        line = self._lines.get(key)
        if line is None:
            (line,) = axes.plot(list(xs), list(ys), style, color=color, label=key, markersize=3)
            self._lines[key] = line
        else:
            line.set_data(list(xs), list(ys))
        self._rescale()

    def append(self, key: str, x: float, y: float, **kwargs) -> None:
        """Add one point at the end of the curve ``key`` (created on first use)."""
        xs, ys = self.curve(key)
        self.set_curve(key, [*xs, x], [*ys, y], **kwargs)

    def curve(self, key: str) -> tuple[list[float], list[float]]:
        """Return the points of the curve ``key`` (empty lists if it does not exist)."""
        line = self._lines.get(key)
        if line is None:
            return [], []
        return [float(v) for v in line.get_xdata()], [float(v) for v in line.get_ydata()]

    def set_marker(
        self, key: str, x: float, y: float | None = None, *, color: str = "#ff6f61"
    ) -> None:
        """Mark ``x`` with a vertical line (and the point ``(x, y)`` when given)."""
        self.remove_marker(key)
        artists = [self.axes.axvline(x, color=color, linewidth=1, linestyle="--")]
        if y is not None:
            artists += self.axes.plot([x], [y], "o", color=color, markersize=5)
        self._markers[key] = artists
        self.draw_idle()

    def remove_marker(self, key: str) -> None:
        """Remove the marker ``key`` if it is shown."""
        for artist in self._markers.pop(key, []):
            artist.remove()

    def marker_x(self, key: str) -> float | None:
        """Return the x position of the marker ``key``, or ``None``."""
        artists = self._markers.get(key)
        if not artists:
            return None
        return float(artists[0].get_xdata()[0])

    def clear_curves(self) -> None:
        """Remove every curve and marker."""
        for line in self._lines.values():
            line.remove()
        self._lines.clear()
        for key in list(self._markers):
            self.remove_marker(key)
        self._rescale()

    def _rescale(self) -> None:
        for axes in (self.axes, self.right_axes):
            if axes is None:
                continue
            axes.relim()
            axes.autoscale_view()
        if self.right_axes is not None and self._right_ylim is not None:
            self.right_axes.set_ylim(*self._right_ylim)
        self.draw_idle()
