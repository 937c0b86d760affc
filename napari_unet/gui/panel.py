"""napari U-Net: the whole loop in one dock, a foldable section per step, top to bottom.

The sections hold the same widgets as the single-step docks (they share the
viewer's session through :func:`~napari_unet.gui.session.get_session`), in one
scroll area so the dock asks for little height whatever is open.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QLabel, QVBoxLayout, QWidget

from napari_unet.gui._scroll import VerticalScrollArea
from napari_unet.gui._section import Section
from napari_unet.gui.correct_widget import CorrectMasksWidget
from napari_unet.gui.dice_widget import DiceWidget
from napari_unet.gui.finetune_widget import FineTuneWidget
from napari_unet.gui.load_widget import LoadImagesWidget
from napari_unet.gui.segment_widget import SegmentWidget
from napari_unet.gui.weightmap_widget import BorderWeightMapWidget

if TYPE_CHECKING:
    import napari

PANEL_TITLE = "napari U-Net"


@dataclass(frozen=True)
class Step:
    """One step of the loop: its title, its widget class, the labels its status line follows.

    The status line shows the first of ``status_labels`` that has text.
    """

    key: str
    title: str
    widget: type[QWidget]
    status_labels: tuple[str, ...]


STEPS = (
    Step("load", "1 Images", LoadImagesWidget, ("status",)),
    Step("segment", "2 Segment & threshold", SegmentWidget, ("status",)),
    Step("correct", "3 Correct & accept", CorrectMasksWidget, ("count_label",)),
    Step("finetune", "4 Fine-tune", FineTuneWidget, ("status", "count_label")),
    Step("weightmap", "5 Border weight map", BorderWeightMapWidget, ("status",)),
    Step("dice", "6 Dice vs ground truth", DiceWidget, ("status",)),
)
#: How many steps are open when the panel appears (the rest are folded).
OPEN_AT_START = 2


class UNetPanel(QWidget):
    """Every napari-unet step in one dock, as foldable sections in the order of the loop.

    Parameters
    ----------
    napari_viewer
        The viewer the steps work on.

    Attributes
    ----------
    sections : list of Section
        The sections, in the order of :data:`STEPS`.
    steps : dict
        The step widgets by :attr:`Step.key` (``"segment"``, ``"dice"``, ...).
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.sections: list[Section] = []
        self.steps: dict[str, QWidget] = {}
        inner = QWidget()
        column = QVBoxLayout(inner)
        column.setContentsMargins(2, 2, 2, 2)
        for i, step in enumerate(STEPS):
            widget = step.widget(napari_viewer)
            # The section's frame already sets the step apart: thin margins
            # keep the panel narrow.
            widget.layout().setContentsMargins(4, 4, 4, 4)
            section = Section(step.title, widget, inner)
            section.set_expanded(i < OPEN_AT_START)
            labels = [getattr(widget, name) for name in step.status_labels]
            for label in labels:
                follow_text(label, lambda _text, s=section, ls=labels: _show_status(s, ls))
            _show_status(section, labels)
            section.toggled.connect(lambda opened, s=section: opened and self._reveal(s))
            column.addWidget(section)
            self.sections.append(section)
            self.steps[step.key] = widget
        column.addStretch(1)
        # As wide as the widest step, open or folded: opening a section never
        # widens the dock under the user's hand.
        margins = column.contentsMargins()
        widest = max(s.body.minimumSizeHint().width() for s in self.sections)
        inner.setMinimumWidth(widest + margins.left() + margins.right())
        self.scroll = VerticalScrollArea(inner, self)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self.scroll)

    def section(self, key: str) -> Section:
        """Return the section of step ``key`` (``"load"``, ``"segment"``, ...)."""
        return self.sections[[s.key for s in STEPS].index(key)]

    def _reveal(self, section: Section) -> None:
        # After the layout has made room for the opened body.
        QTimer.singleShot(0, lambda: self.scroll.ensureWidgetVisible(section, 0, 0))


def _show_status(section: Section, labels: list[QLabel]) -> None:
    section.set_status(next((lb.text() for lb in labels if lb.text()), ""))


def follow_text(label: QLabel, callback: Callable[[str], None]) -> None:
    """Call ``callback(text)`` after every ``label.setText(text)``.

    QLabel has no signal for a new text.  The step widgets set their status
    from Python, so wrapping this label's ``setText`` sees every change without
    polling and without the step widgets knowing about the panel.
    """
    original = label.setText

    def set_text(text: str) -> None:
        original(text)
        callback(text)

    label.setText = set_text  # type: ignore[method-assign]
