"""The "napari U-Net" panel: one dock, six foldable steps in order, whole titles, fits a laptop."""

from __future__ import annotations

import pytest
from qtpy.QtCore import Qt
from qtpy.QtWidgets import QApplication

from napari_unet.gui.correct_widget import CorrectMasksWidget
from napari_unet.gui.dice_widget import DiceWidget
from napari_unet.gui.finetune_widget import FineTuneWidget
from napari_unet.gui.load_widget import LoadImagesWidget
from napari_unet.gui.panel import OPEN_AT_START, PANEL_TITLE, STEPS, UNetPanel
from napari_unet.gui.segment_widget import SegmentWidget
from napari_unet.gui.session import get_session
from napari_unet.gui.weightmap_widget import BorderWeightMapWidget

pytestmark = pytest.mark.gui

TITLES = [
    "1 Images",
    "2 Segment & threshold",
    "3 Correct & accept",
    "4 Fine-tune",
    "5 Border weight map",
    "6 Dice vs ground truth",
]
CLASSES = [
    LoadImagesWidget,
    SegmentWidget,
    CorrectMasksWidget,
    FineTuneWidget,
    BorderWeightMapWidget,
    DiceWidget,
]
SINGLE_STEPS = [
    "Load images",
    "Segment",
    "Correct masks",
    "Fine-tune",
    "Border weight map",
    "Dice vs ground truth",
]
#: A common laptop screen.
SCREEN_W, SCREEN_H = 1366, 768


def _settle():
    for _ in range(5):
        QApplication.processEvents()


@pytest.fixture
def docked(make_napari_viewer):
    viewer = make_napari_viewer(show=True)
    dock, panel = viewer.window.add_plugin_dock_widget("napari-unet", PANEL_TITLE)
    _settle()
    return viewer, dock, panel


def test_panel_docks_with_six_steps_in_order(docked):
    viewer, dock, panel = docked
    assert isinstance(panel, UNetPanel)
    assert [s.title for s in panel.sections] == TITLES
    for section, cls in zip(panel.sections, CLASSES, strict=True):
        assert type(section.body) is cls  # the real step widget, not a copy
    assert [s.key for s in STEPS] == list(panel.steps)


def test_titles_are_whole(docked):
    _, dock, panel = docked
    for section in panel.sections:
        section.set_expanded(True)
    _settle()
    for section, title in zip(panel.sections, TITLES, strict=True):
        label = section.header.title
        assert label.text() == title
        # Never squeezed below its full text, and there is room for it.
        assert label.width() >= label.sizeHint().width()
        assert label.sizeHint().width() <= panel.width()


def test_first_steps_open_and_folding(docked, qtbot):
    _, _, panel = docked
    opened = [s.is_expanded() for s in panel.sections]
    assert opened == [i < OPEN_AT_START for i in range(len(STEPS))]
    assert OPEN_AT_START <= 2
    segment = panel.section("segment")
    assert segment.body.isVisible()
    qtbot.mouseClick(segment.header.arrow, Qt.MouseButton.LeftButton)
    assert not segment.is_expanded() and not segment.body.isVisible()
    # A click anywhere on the header opens it again.
    qtbot.mouseClick(segment.header, Qt.MouseButton.LeftButton)
    assert segment.is_expanded() and segment.body.isVisible()
    dice = panel.section("dice")
    dice.toggle()
    assert dice.is_expanded()


def test_sections_share_the_viewer_session(docked):
    viewer, _, panel = docked
    session = get_session(viewer)
    for widget in panel.steps.values():
        if hasattr(widget, "session"):
            assert widget.session is session
    panel.steps["segment"].threshold_slider.setValue(0.3)
    _settle()
    assert session.threshold == pytest.approx(0.3)


def test_header_status_follows_the_step(docked):
    _, _, panel = docked
    segment = panel.steps["segment"]
    assert panel.section("segment").header.status.text() == segment.status.text()
    segment.status.setText("Predicting 'nuclei'...")
    assert panel.section("segment").header.status.text() == "Predicting 'nuclei'..."
    # A long status stays on one line: it never widens the panel.
    width = panel.minimumSizeHint().width()
    panel.steps["load"].status.setText("x" * 500)
    assert panel.minimumSizeHint().width() == width
    # Fine-tune has no status before its first run: its training-set count shows.
    finetune = panel.steps["finetune"]
    assert panel.section("finetune").header.status.text() == finetune.count_label.text()


def test_panel_fits_a_laptop_screen(docked):
    viewer, dock, panel = docked
    window = viewer.window._qt_window
    assert dock.minimumSizeHint().height() <= 600
    assert window.minimumSizeHint().height() <= SCREEN_H
    assert panel.minimumSizeHint().width() <= 420
    # Every section open: still scrolls rather than grows.
    for section in panel.sections:
        section.set_expanded(True)
    _settle()
    assert dock.minimumSizeHint().height() <= 600
    assert window.minimumSizeHint().height() <= SCREEN_H
    assert panel.minimumSizeHint().width() <= 420
    assert window.minimumSizeHint().width() <= SCREEN_W


def test_every_single_step_and_the_panel_docked_fit(docked):
    """The single steps stay in the Plugins menu; all of them docked still fit a screen."""
    viewer, _, panel = docked
    for name, cls in zip(SINGLE_STEPS, CLASSES, strict=True):
        dock, widget = viewer.window.add_plugin_dock_widget("napari-unet", name)
        assert isinstance(widget, cls)  # what napari hands back is the step widget
        assert dock.minimumSizeHint().height() <= 200
    _settle()
    assert viewer.window._qt_window.minimumSizeHint().height() <= 1100
