"""Screenshots of every napari-unet widget at work, for the README.

Run on a display or a virtual one:

    xvfb-run -a -s "-screen 0 1600x1000x24" .venv/bin/python scripts/screenshots.py

It opens the nuclei sample, segments it with the shipped model, moves the
threshold, accepts the mask, fine-tunes for a few epochs, shows the weight map
and the Dice table, and saves one PNG per widget, plus the whole window after
Segment and with the weight map shown, in docs/screenshots/.
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

from napari_unet.gui.demo import choose_qt_api, open_demo

# Before napari and qtpy are imported: PyQt6 where installed, as the demo runs,
# so that napari's PyQt5 notice does not cover the window shots.
choose_qt_api(os.environ)

import napari  # noqa: E402
import numpy as np  # noqa: E402
from qtpy.QtCore import QRect  # noqa: E402
from qtpy.QtWidgets import QApplication  # noqa: E402

from napari_unet.gui.session import get_session  # noqa: E402

#: Panel step key -> (the name used below, the PNG written).
FILES = {
    "load": ("Load images", "load_images.png"),
    "segment": ("Segment", "segment.png"),
    "correct": ("Correct masks", "correct_masks.png"),
    "finetune": ("Fine-tune", "fine_tune.png"),
    "weightmap": ("Border weight map", "border_weight_map.png"),
    "dice": ("Dice vs ground truth", "dice.png"),
}


def wait(condition, timeout=600.0):
    start = time.monotonic()
    while not condition():
        QApplication.processEvents()
        time.sleep(0.02)
        if time.monotonic() - start > timeout:
            raise TimeoutError("gave up waiting")
    for _ in range(10):
        QApplication.processEvents()


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--out", type=Path, default=Path("docs/screenshots"))
    parser.add_argument("--epochs", type=int, default=4)
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)

    viewer = napari.Viewer(title="napari-unet", show=True)
    viewer.window._qt_window.resize(1600, 1000)
    panel = open_demo(viewer)
    widgets = {name: panel.steps[key] for key, (name, _) in FILES.items()}
    files = {name: png for name, png in FILES.values()}
    keys = {name: key for key, (name, _) in FILES.items()}
    session = get_session(viewer)
    work = Path(tempfile.mkdtemp(prefix="napari-unet-shots-"))

    def shoot(name: str) -> None:
        # The step's section open, the others folded, as a user works through the panel.
        for key, (other, _) in FILES.items():
            panel.section(key).set_expanded(other == name)
        wait(lambda: True)
        widget = widgets[name]
        section = panel.section(keys[name])
        panel.scroll.ensureWidgetVisible(section, 0, 0)
        wait(lambda: True)
        # Crop the empty space a tall widget leaves below the controls (a plot
        # fills its widget, so those are kept whole).
        height = widget.height()
        if not hasattr(widget, "plot"):
            height = min(height, widget.minimumSizeHint().height() + 12)
        widget.grab(QRect(0, 0, widget.width(), height)).save(str(args.out / files[name]))

    shoot("Load images")

    segment = widgets["Segment"]
    segment.device_combo.setCurrentIndex(segment.device_combo.findData("cpu"))
    segment.image_combo.set_layer("nuclei")
    segment.run()
    wait(lambda: segment.worker is None)
    segment.threshold_slider.setValue(0.45)
    wait(lambda: segment.pending_updates == 0)
    viewer.layers["nuclei probability"].visible = False
    shoot("Segment")
    viewer.screenshot(str(args.out / "window_segment.png"), canvas_only=False)

    correct = widgets["Correct masks"]
    correct.mask_combo.set_layer("nuclei mask")
    correct.image_combo.set_layer("nuclei")
    correct.folder_edit.setText(str(work / "accepted"))
    mask = viewer.layers["nuclei mask"]
    ys, xs = np.nonzero(mask.data)
    correct.delete_at(float(ys[len(ys) // 2]), float(xs[len(xs) // 2]))
    correct.accept()
    shoot("Correct masks")

    finetune = widgets["Fine-tune"]
    finetune.epochs_spin.setValue(args.epochs)
    finetune.image_combo.set_layer("nuclei")
    finetune.start()
    wait(lambda: finetune.worker is None and finetune.repredictor.worker is None)
    shoot("Fine-tune")

    weightmap = widgets["Border weight map"]
    weightmap.labels_combo.set_layer("nuclei ground truth")
    weightmap.show_weight_map()
    name = weightmap.weight_layer_name("nuclei ground truth")
    wait(lambda: name in viewer.layers and weightmap.worker is None)
    shoot("Border weight map")
    shown = {layer.name: layer.visible for layer in viewer.layers}
    for layer in viewer.layers:
        layer.visible = layer.name == name
    wait(lambda: True)
    viewer.screenshot(str(args.out / "window_weight_map.png"), canvas_only=False)
    for layer in viewer.layers:
        layer.visible = shown[layer.name] and layer.name != name

    dice_widget = widgets["Dice vs ground truth"]
    dice_widget.pred_combo.set_layer("nuclei probability")
    dice_widget.truth_combo.set_layer("nuclei ground truth")
    dice_widget.compute(notify=False)
    shoot("Dice vs ground truth")

    print(f"screenshots saved in {args.out.resolve()} (session model: {session.model_label})")
    viewer.close()


if __name__ == "__main__":
    main()
