"""Scroll areas that keep a dock widget's minimum height small and its width whole.

A dock's minimum height is its contents' minimum height; several tall widgets
docked together add up past the screen.  Inside a scroll area the contents keep
their size and the dock can shrink to a few lines.
"""

from __future__ import annotations

from qtpy.QtCore import QEvent, QObject, Qt
from qtpy.QtWidgets import QBoxLayout, QFrame, QScrollArea, QSizePolicy, QStyle, QWidget

#: The least height a scrolled dock asks for: a few lines of controls.
MIN_SCROLL_HEIGHT = 120


class VerticalScrollArea(QScrollArea):
    """Scroll ``inner`` vertically; as wide as it needs, never scrolled sideways.

    Parameters
    ----------
    inner
        The widget to scroll; the area resizes it to its own width.
    parent
        The Qt parent.
    """

    def __init__(self, inner: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setWidgetResizable(True)
        self.setFrameShape(QFrame.Shape.NoFrame)
        self.setHorizontalScrollBarPolicy(Qt.ScrollBarPolicy.ScrollBarAlwaysOff)
        self.setSizePolicy(QSizePolicy.Policy.Preferred, QSizePolicy.Policy.Expanding)
        self.setWidget(inner)
        inner.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:  # noqa: N802 (Qt's name)
        """Ask the dock for a new size when the contents' layout changes (a section opens)."""
        if watched is self.widget() and event.type() == QEvent.Type.LayoutRequest:
            self.updateGeometry()
        return super().eventFilter(watched, event)

    def minimumSizeHint(self):  # noqa: N802 (Qt's name)
        """Return a small height and the contents' width plus the scroll bar (nothing cut)."""
        hint = super().minimumSizeHint()
        inner = self.widget()
        bar = self.style().pixelMetric(QStyle.PixelMetric.PM_ScrollBarExtent)
        width = max(inner.minimumSizeHint().width(), inner.minimumWidth())
        width += bar + 2 * self.frameWidth()
        hint.setWidth(max(hint.width(), width))
        hint.setHeight(min(hint.height(), MIN_SCROLL_HEIGHT))
        return hint

    def sizeHint(self):  # noqa: N802 (Qt's name)
        """As tall as the contents, so a dock with room shows them without a scroll bar."""
        hint = super().sizeHint()
        inner = self.widget().sizeHint()
        hint.setHeight(max(hint.height(), inner.height() + 2 * self.frameWidth()))
        hint.setWidth(max(hint.width(), self.minimumSizeHint().width()))
        return hint


def scroll_contents(widget: QWidget) -> VerticalScrollArea:
    """Move what ``widget``'s box layout holds into a scroll area inside ``widget``.

    The widget keeps its identity (its attributes, its signals, what napari
    returns for the dock); only its children move one level down.  Qt gives a
    layout to one widget for life, so the items are handed over one by one.

    Parameters
    ----------
    widget
        A widget whose layout is a ``QBoxLayout`` (every napari-unet step widget).

    Returns
    -------
    VerticalScrollArea
        The scroll area, now the only item of ``widget``'s layout.
    """
    outer = widget.layout()
    if not isinstance(outer, QBoxLayout):
        raise TypeError(f"{type(widget).__name__} has no box layout to scroll")
    inner = QWidget()
    moved = QBoxLayout(outer.direction(), inner)
    moved.setContentsMargins(outer.contentsMargins())
    moved.setSpacing(outer.spacing())
    stretches = [outer.stretch(i) for i in range(outer.count())]
    # itemAt lends the item; removing by the widget or the layout itself keeps
    # each Python wrapper of its own type, so no wrapper deletes a moved object.
    while outer.count():
        item = outer.itemAt(0)
        if item.widget() is not None:
            child = item.widget()
            outer.removeWidget(child)
            moved.addWidget(child)
        elif item.layout() is not None:
            sub = item.layout()
            outer.removeItem(sub)
            moved.addLayout(sub)
        else:  # a spacer: stretches come back below, fixed gaps as gaps
            grows = bool(item.expandingDirections() & _direction(outer))
            gap = item.sizeHint()
            outer.removeItem(item)
            if grows:
                moved.addStretch()
            else:
                moved.addSpacing(max(gap.width(), gap.height()))
    for i, stretch in enumerate(stretches):
        moved.setStretch(i, stretch)
    area = VerticalScrollArea(inner, widget)
    outer.setContentsMargins(0, 0, 0, 0)
    outer.addWidget(area)
    return area


def _direction(layout: QBoxLayout) -> Qt.Orientation:
    vertical = layout.direction() in (
        QBoxLayout.Direction.TopToBottom,
        QBoxLayout.Direction.BottomToTop,
    )
    return Qt.Orientation.Vertical if vertical else Qt.Orientation.Horizontal
