"""Segment's Model box: a file that is not a model gives one line and changes nothing."""

from __future__ import annotations

import pytest
from qtpy.QtCore import QTimer
from qtpy.QtWidgets import QApplication, QDialogButtonBox, QFileDialog

from napari_unet.core.model import build_model, save_model
from napari_unet.gui._model_choice import FROM_FILE
from napari_unet.gui.session import get_session

pytestmark = pytest.mark.gui


def answer_file_dialog(combo, path=None):
    """Pick "from file..." in ``combo`` and answer the real open dialog it shows.

    ``path`` is typed in and Open pressed; ``None`` presses Cancel.  The
    buttons are clicked as a user would (the dialog's own accept() is not
    reachable from Python).
    """
    seen = []

    def answer(tries=0):
        dialog = QApplication.activeModalWidget()
        if not isinstance(dialog, QFileDialog):
            if tries < 200:  # not shown yet; give up after 10 s rather than hang
                QTimer.singleShot(50, lambda: answer(tries + 1))
            return
        seen.append(dialog)
        buttons = dialog.findChild(QDialogButtonBox)
        if path is None:
            buttons.button(QDialogButtonBox.Cancel).click()
        else:
            dialog.selectFile(str(path))
            buttons.button(QDialogButtonBox.Open).click()

    QTimer.singleShot(0, answer)
    index = combo.findData(FROM_FILE)
    combo.setCurrentIndex(index)  # what a click on the entry does, then ...
    combo.activated.emit(index)  # ... the signal only a user's choice sends
    assert seen, "the file dialog never opened"


@pytest.mark.parametrize(
    "content",
    # "a" starts an APPEND to an empty stack: torch's unpickler raised IndexError
    # ("pop from empty list"); "c" reads as a global, which is no reason to call
    # a CSV file unsafe.
    [b"a quick note\n", b"cells,area\n1,2\n", b"\x00\x01 binary junk"],
    ids=["text", "csv", "binary"],
)
def test_a_file_that_is_not_a_model_keeps_the_model_in_use(
    make_napari_viewer, qtbot, tmp_path, messages, content
):
    viewer = make_napari_viewer()
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
    choice = segment.model_choice
    tiny = save_model(build_model(base_width=4, depth=2).eval(), tmp_path / "tiny.pt")
    assert choice.load_file(tiny)
    in_use = choice.model()
    assert choice.combo.currentText() == "file: tiny.pt"

    notes = tmp_path / "notes.txt"
    notes.write_bytes(content)
    answer_file_dialog(choice.combo, notes)

    errors = [m for m in messages if "notes.txt" in m]
    assert len(errors) == 1, messages
    (error,) = errors
    assert error.startswith("Segment: ") and "\n" not in error
    assert "is not a readable model file" in error
    assert "choose a .pt saved by napari-unet" in error
    assert "pop from empty list" not in error and "safety" not in error
    # The box is back on the model in use, and that is what the next Run takes.
    assert choice.combo.currentText() == "file: tiny.pt"
    assert choice.model() is in_use
    assert get_session(viewer).model is in_use
    assert get_session(viewer).model_label == "file: tiny.pt"


def test_cancelled_dialog_keeps_the_box_on_the_default(make_napari_viewer, qtbot):
    viewer = make_napari_viewer()
    _, segment = viewer.window.add_plugin_dock_widget("napari-unet", "Segment")
    combo = segment.model_choice.combo
    answer_file_dialog(combo, None)
    assert combo.currentText() == "default (shipped)"
