"""The plugin's one plot widget: curves painted with QPainter.

The fine-tune plot is redrawn after every epoch while two training threads
keep both cores of a small machine busy.  A matplotlib redraw there cost about
100 ms of event-loop time (see BENCHMARKS.md); painting a few polylines and
tick labels directly costs about a millisecond, so the window stays
responsive.  The Dice-versus-threshold curve uses the same widget with fixed
axes.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from qtpy.QtCore import QPointF, QRectF, Qt
from qtpy.QtGui import QColor, QFont, QPainter, QPen
from qtpy.QtWidgets import QSizePolicy, QWidget

from napari_unet.gui._ticks import nice_range, nice_ticks, tick_text

__all__ = ["LivePlot", "nice_range", "nice_ticks", "tick_text"]

_BACKGROUND = QColor("#262930")
_FOREGROUND = QColor("#d6d0ce")
# Margins in pixels around the plotting area: left, right, bottom, top.
_MARGINS = (48, 44, 34, 8)


@dataclass
class _Curve:
    color: QColor
    right: bool
    xs: list[float] = field(default_factory=list)
    ys: list[float] = field(default_factory=list)


class LivePlot(QWidget):
    """Curves against a shared x axis (epochs by default), on one or two y axes.

    Parameters
    ----------
    xlabel, ylabel
        Titles of the x axis and the left y axis.
    right_ylabel
        Title of the right y axis, or ``None`` for none.
    right_ylim
        Range of the right axis (Dice lives in [0, 1]): fixed, or with
        ``zoom_right`` the widest range the axis may zoom out to.
    zoom_right
        Zoom the right axis to its curves' values (round ticks, within
        ``right_ylim``) so that close values stay apart.
    xlim, ylim
        Fixed ranges of the x axis and the left y axis; by default they follow
        the data.
    whole_x
        Label only whole numbers on the x axis (epochs).
    """

    def __init__(
        self,
        xlabel: str,
        ylabel: str,
        *,
        right_ylabel: str | None = None,
        right_ylim: tuple[float, float] = (0.0, 1.0),
        zoom_right: bool = False,
        xlim: tuple[float, float] | None = None,
        ylim: tuple[float, float] | None = None,
        whole_x: bool = True,
        parent: QWidget | None = None,
    ) -> None:
        super().__init__(parent)
        self.setMinimumHeight(160)
        self.setSizePolicy(QSizePolicy.Expanding, QSizePolicy.Expanding)
        self._labels = {"x": xlabel, "left": ylabel, "right": right_ylabel}
        self._label_colors = {"left": _FOREGROUND, "right": _FOREGROUND}
        self._right_ylim = right_ylim
        self._zoom_right = zoom_right
        self._curves: dict[str, _Curve] = {}
        self._markers: dict[str, tuple[float, float | None, QColor]] = {}
        self._xlim, self._ylim, self._whole_x = xlim, ylim, whole_x

    # -- data ---------------------------------------------------------------
    def color_ylabels(self, left: str, right: str | None = None) -> None:
        """Colour the y-axis titles like their curves (a legend that takes no room)."""
        self._label_colors["left"] = QColor(left)
        if right is not None:
            self._label_colors["right"] = QColor(right)
        self.update()

    def append(
        self, key: str, x: float, y: float, *, right: bool = False, color: str = "#ffffff", **_
    ) -> None:
        """Add one point at the end of the curve ``key`` (created on first use)."""
        curve = self._curves.setdefault(key, _Curve(QColor(color), right))
        curve.xs.append(float(x))
        curve.ys.append(float(y))
        self.update()

    def curve(self, key: str) -> tuple[list[float], list[float]]:
        """Return the points of the curve ``key`` (empty lists if it does not exist)."""
        curve = self._curves.get(key)
        return ([], []) if curve is None else (list(curve.xs), list(curve.ys))

    def set_curve(self, key: str, xs, ys, *, right: bool = False, color: str = "#ffffff") -> None:
        """Replace the points of the curve ``key`` (created on first use)."""
        self._curves[key] = _Curve(QColor(color), right, [float(x) for x in xs],
                                   [float(y) for y in ys])  # fmt: skip
        self.update()

    def set_marker(
        self, key: str, x: float, y: float | None = None, *, color: str = "#81c784"
    ) -> None:
        """Mark ``x`` with a dashed vertical line, and the point ``(x, y)`` if given."""
        self._markers[key] = (float(x), None if y is None else float(y), QColor(color))
        self.update()

    def marker_x(self, key: str) -> float | None:
        """Return the x position of the marker ``key``, or ``None``."""
        marker = self._markers.get(key)
        return None if marker is None else marker[0]

    def marker_y(self, key: str) -> float | None:
        """Return the y position of the marker ``key``, or ``None``."""
        marker = self._markers.get(key)
        return None if marker is None else marker[1]

    def clear_curves(self) -> None:
        """Remove every curve and marker."""
        self._curves.clear()
        self._markers.clear()
        self.update()

    def right_range(self) -> tuple[float, float]:
        """Return the limits of the right y axis as they are drawn."""
        if not self._zoom_right:
            return self._right_ylim
        values = [y for c in self._curves.values() if c.right for y in c.ys]
        return nice_range(values, self._right_ylim)

    def right_ticks(self) -> list[str]:
        """Return the tick labels of the right y axis as they are drawn."""
        ticks = nice_ticks(*self.right_range())
        return [tick_text(tick, ticks) for tick in ticks]

    # -- painting -----------------------------------------------------------
    def _ranges(self) -> tuple[tuple[float, float], tuple[float, float]]:
        xs = [x for c in self._curves.values() for x in c.xs]
        left = [y for c in self._curves.values() if not c.right for y in c.ys if math.isfinite(y)]
        x_range = (min(xs, default=0.0), max(xs, default=1.0))
        if x_range[1] - x_range[0] < 1:
            x_range = (x_range[0], x_range[0] + 1)
        if self._xlim is not None:
            x_range = self._xlim
        if self._ylim is not None:
            return x_range, self._ylim
        y_range = (min(left, default=0.0), max(left, default=1.0))
        pad = (y_range[1] - y_range[0]) * 0.05 or max(abs(y_range[0]) * 0.05, 0.05)
        return x_range, (y_range[0] - pad, y_range[1] + pad)

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Paint axes, ticks, curves and markers."""
        painter = QPainter(self)
        painter.setRenderHint(QPainter.Antialiasing)
        painter.fillRect(self.rect(), _BACKGROUND)
        font = QFont(painter.font())
        font.setPointSizeF(7.5)
        painter.setFont(font)
        left_m, right_m, bottom_m, top_m = _MARGINS
        area = QRectF(
            left_m,
            top_m,
            max(self.width() - left_m - right_m, 10),
            max(self.height() - top_m - bottom_m, 10),
        )
        (x0, x1), (y0, y1) = self._ranges()
        r0, r1 = self.right_range()

        def px(x: float) -> float:
            return area.left() + (x - x0) / (x1 - x0) * area.width()

        def py(y: float, right: bool = False) -> float:
            low, high = (r0, r1) if right else (y0, y1)
            return area.bottom() - (y - low) / (high - low) * area.height()

        painter.setPen(QPen(_FOREGROUND, 1))
        painter.drawRect(area)
        metrics = painter.fontMetrics()
        x_ticks = nice_ticks(x0, x1)
        for tick in x_ticks:
            if self._whole_x and tick != int(tick):
                continue  # x counts epochs: whole numbers only
            x = px(tick)
            painter.drawLine(QPointF(x, area.bottom()), QPointF(x, area.bottom() + 3))
            text = f"{tick:g}" if self._whole_x else tick_text(tick, x_ticks)
            painter.drawText(
                QPointF(x - metrics.horizontalAdvance(text) / 2, area.bottom() + 14), text
            )
        left_ticks = nice_ticks(y0, y1)
        for tick in left_ticks:
            y = py(tick)
            painter.drawLine(QPointF(area.left() - 3, y), QPointF(area.left(), y))
            text = tick_text(tick, left_ticks)
            painter.drawText(
                QPointF(area.left() - 5 - metrics.horizontalAdvance(text), y + 3), text
            )
        if self._labels["right"] is not None:
            right_ticks = nice_ticks(r0, r1)
            for tick in right_ticks:
                y = py(tick, right=True)
                painter.drawLine(QPointF(area.right(), y), QPointF(area.right() + 3, y))
                painter.drawText(QPointF(area.right() + 5, y + 3), tick_text(tick, right_ticks))
        painter.drawText(
            QPointF(area.center().x() - metrics.horizontalAdvance(self._labels["x"]) / 2,
                    self.height() - 4),
            self._labels["x"],
        )  # fmt: skip
        self._vertical_label(painter, "left", 12, area)
        if self._labels["right"] is not None:
            self._vertical_label(painter, "right", self.width() - 4, area)

        painter.setClipRect(area.adjusted(-4, -4, 4, 4))
        for x, y, color in self._markers.values():
            pen = QPen(color, 1, Qt.DashLine)
            painter.setPen(pen)
            painter.drawLine(QPointF(px(x), area.top()), QPointF(px(x), area.bottom()))
            if y is not None:
                painter.setBrush(color)
                painter.drawEllipse(QPointF(px(x), py(y)), 4.0, 4.0)
        for curve in self._curves.values():
            points = [
                QPointF(px(x), py(y, curve.right))
                for x, y in zip(curve.xs, curve.ys, strict=True)
                if math.isfinite(y)
            ]
            painter.setPen(QPen(curve.color, 1.5))
            for a, b in zip(points, points[1:], strict=False):
                painter.drawLine(a, b)
            painter.setBrush(curve.color)
            for point in points:
                painter.drawEllipse(point, 2.5, 2.5)
        painter.end()

    def _vertical_label(self, painter: QPainter, side: str, x: float, area: QRectF) -> None:
        text = self._labels[side]
        painter.save()
        painter.setPen(QPen(self._label_colors[side], 1))
        painter.translate(x, area.center().y() + painter.fontMetrics().horizontalAdvance(text) / 2)
        painter.rotate(-90)
        painter.drawText(QPointF(0, 0), text)
        painter.restore()
