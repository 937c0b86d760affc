"""The single-step docks of the Plugins menu: each step widget with its contents in a scroll area.

Docked together (with the panel too) they stack in one column; scrolled, each
asks for a few lines of height instead of all of its controls, so the window
still fits the screen.  They are the step widgets themselves (subclasses), so
what napari returns for a dock has the step's attributes and methods.  The
panel uses the plain step widgets: it scrolls all its sections at once.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from napari_unet.gui._scroll import scroll_contents
from napari_unet.gui.correct_widget import CorrectMasksWidget
from napari_unet.gui.dice_widget import DiceWidget
from napari_unet.gui.finetune_widget import FineTuneWidget
from napari_unet.gui.load_widget import LoadImagesWidget
from napari_unet.gui.segment_widget import SegmentWidget
from napari_unet.gui.weightmap_widget import BorderWeightMapWidget

if TYPE_CHECKING:
    import napari


class LoadImagesDock(LoadImagesWidget):
    """:class:`~napari_unet.gui.load_widget.LoadImagesWidget`, scrolled."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        scroll_contents(self)


class SegmentDock(SegmentWidget):
    """:class:`~napari_unet.gui.segment_widget.SegmentWidget`, scrolled."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        scroll_contents(self)


class CorrectMasksDock(CorrectMasksWidget):
    """:class:`~napari_unet.gui.correct_widget.CorrectMasksWidget`, scrolled."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        scroll_contents(self)


class FineTuneDock(FineTuneWidget):
    """:class:`~napari_unet.gui.finetune_widget.FineTuneWidget`, scrolled."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        scroll_contents(self)


class BorderWeightMapDock(BorderWeightMapWidget):
    """:class:`~napari_unet.gui.weightmap_widget.BorderWeightMapWidget`, scrolled."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        scroll_contents(self)


class DiceDock(DiceWidget):
    """:class:`~napari_unet.gui.dice_widget.DiceWidget`, scrolled."""

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__(napari_viewer)
        scroll_contents(self)
