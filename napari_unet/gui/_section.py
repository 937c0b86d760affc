"""A foldable section of the panel: a header (arrow, whole title, status line) over a widget."""

from __future__ import annotations

from qtpy.QtCore import QSize, Qt, Signal
from qtpy.QtGui import QPainter
from qtpy.QtWidgets import (
    QFrame,
    QGridLayout,
    QLabel,
    QSizePolicy,
    QToolButton,
    QVBoxLayout,
    QWidget,
)


class StatusLine(QLabel):
    """One line of text, cut with an ellipsis where it does not fit; the whole text is the tip.

    It asks for no width of its own, so a long status never widens the panel.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        font = self.font()
        font.setItalic(True)
        self.setFont(font)

    def setText(self, text: str) -> None:  # noqa: N802 (Qt's name)
        """Show ``text`` on one line; its whole text goes to the tooltip."""
        text = " ".join(text.split())
        super().setText(text)
        self.setToolTip(text)

    def minimumSizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        """One line high, no width asked for."""
        # lineSpacing plus a little: the underscores of "x_mask.tif" sit below the descent.
        return QSize(0, self.fontMetrics().lineSpacing() + 2)

    def sizeHint(self) -> QSize:  # noqa: N802 (Qt's name)
        """One line high, no width asked for."""
        return self.minimumSizeHint()

    def paintEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Draw the text elided to the width there is."""
        painter = QPainter(self)
        metrics = self.fontMetrics()
        rect = self.contentsRect()
        shown = metrics.elidedText(self.text(), Qt.TextElideMode.ElideRight, rect.width())
        painter.drawText(
            rect, int(Qt.AlignmentFlag.AlignLeft | Qt.AlignmentFlag.AlignVCenter), shown
        )


class SectionHeader(QFrame):
    """The clickable head of a section: the fold arrow, the whole title, the status line.

    The arrow button takes the keyboard focus (Space folds); a click anywhere
    on the header does the same.
    """

    clicked = Signal()

    def __init__(self, title: str, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setFrameShape(QFrame.Shape.StyledPanel)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.arrow = QToolButton(self)
        self.arrow.setAutoRaise(True)
        self.arrow.setAccessibleName(title)
        self.arrow.setToolTip(f"Fold or open '{title}'")
        # A QLabel without a buddy shows "&" as it is; a button would take it
        # for a shortcut mark and hide it.
        self.title = QLabel(title, self)
        self.title.setTextFormat(Qt.TextFormat.PlainText)
        font = self.title.font()
        font.setBold(True)
        self.title.setFont(font)
        self.title.setSizePolicy(QSizePolicy.Policy.Minimum, QSizePolicy.Policy.Fixed)
        self.status = StatusLine(self)
        layout = QGridLayout(self)
        layout.setContentsMargins(4, 2, 4, 2)
        layout.setVerticalSpacing(0)
        layout.addWidget(self.arrow, 0, 0, 2, 1, Qt.AlignmentFlag.AlignTop)
        layout.addWidget(self.title, 0, 1)
        layout.addWidget(self.status, 1, 1)
        layout.setColumnStretch(1, 1)
        self.arrow.clicked.connect(self.clicked)

    def mouseReleaseEvent(self, event) -> None:  # noqa: N802 (Qt's name)
        """Fold or open on a click anywhere on the header."""
        if event.button() == Qt.MouseButton.LeftButton and self.rect().contains(event.pos()):
            self.clicked.emit()
        super().mouseReleaseEvent(event)


class Section(QWidget):
    """A header over ``body``; clicking the header folds and opens the body.

    Signals
    -------
    toggled(bool)
        The section was opened (True) or folded (False).
    """

    toggled = Signal(bool)

    def __init__(self, title: str, body: QWidget, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.header = SectionHeader(title, self)
        self.body = body
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.setSpacing(0)
        layout.addWidget(self.header)
        layout.addWidget(body)
        self._expanded = True
        self.header.clicked.connect(self.toggle)
        self.set_expanded(True)

    @property
    def title(self) -> str:
        """The section's whole title."""
        return self.header.title.text()

    def is_expanded(self) -> bool:
        """Whether the body is shown."""
        return self._expanded

    def set_expanded(self, expanded: bool) -> None:
        """Show (``True``) or fold (``False``) the body."""
        changed = expanded != self._expanded
        self._expanded = expanded
        self.body.setVisible(expanded)
        arrow = Qt.ArrowType.DownArrow if expanded else Qt.ArrowType.RightArrow
        self.header.arrow.setArrowType(arrow)
        if changed:
            self.toggled.emit(expanded)

    def toggle(self) -> None:
        """Fold an open section, open a folded one."""
        self.set_expanded(not self._expanded)

    def set_status(self, text: str) -> None:
        """Show ``text`` on the header's status line."""
        self.header.status.setText(text)
