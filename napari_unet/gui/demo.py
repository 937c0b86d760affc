"""The main job: napari with the "napari U-Net" panel docked and the sample loaded.

Run ``python -m napari_unet.gui.demo``.  With ``--headless`` (used on machines
without a display, on a virtual one) it saves a screenshot of the whole window,
prints its path and exits instead of handing control to the user.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import MutableMapping
from pathlib import Path

PLUGIN = "napari-unet"
#: Display name of the panel in napari.yaml: every step, top to bottom.
PANEL = "napari U-Net"


def open_demo(viewer, sample: str = "nuclei"):
    """Load ``sample`` into ``viewer`` and dock the napari U-Net panel; return the panel."""
    viewer.open_sample(PLUGIN, sample)
    _, panel = viewer.window.add_plugin_dock_widget(PLUGIN, PANEL)
    return panel


def choose_qt_api(environ: MutableMapping[str, str]) -> str | None:
    """Prefer PyQt6 when the user chose no binding and PyQt6 is installed.

    napari deprecates PyQt5 and says so in a notification over the canvas at
    every start on it; on PyQt6 there is nothing to say.  ``QT_API`` is qtpy's
    documented switch, so it must be set before qtpy (or napari) is imported.
    A binding the user chose is kept.  Returns the ``QT_API`` in effect.
    """
    if not environ.get("QT_API") and importlib.util.find_spec("PyQt6") is not None:
        environ["QT_API"] = "pyqt6"
    return environ.get("QT_API")


#: Said on the console instead of napari's notification over the canvas.
PYQT5_NOTE = (
    "note: napari deprecates PyQt5; install PyQt6 (pip install PyQt6) and this command uses it"
)


def quiet_pyqt5_notice() -> bool:
    """On PyQt5, give napari's deprecation notice on the console, not over the canvas.

    napari shows it in a notification at the window's first show, where it
    covers the middle of the canvas, whenever its module flag is set (napari's
    own, private: where it is missing nothing changes).  Returns whether the
    notice was moved.
    """
    try:
        from napari._qt import qt_main_window
    except ImportError:
        return False
    if not getattr(qt_main_window, "SHOW_QT_WARNING", False):
        return False
    qt_main_window.SHOW_QT_WARNING = False
    print(PYQT5_NOTE, file=sys.stderr)
    return True


def main(argv: list[str] | None = None) -> int:
    """Open the demo; in headless mode save a screenshot and print its path."""
    parser = argparse.ArgumentParser(prog="python -m napari_unet.gui.demo")
    parser.add_argument("--headless", action="store_true", help="screenshot and exit")
    parser.add_argument(
        "--screenshot",
        type=Path,
        default=Path("screenshots") / "demo.png",
        help="where --headless saves the screenshot (default: screenshots/demo.png)",
    )
    parser.add_argument("--sample", default="nuclei", help="sample key to open")
    args = parser.parse_args(argv)

    choose_qt_api(os.environ)
    import napari
    import qtpy
    from qtpy.QtWidgets import QApplication

    print(f"Qt binding: {qtpy.API_NAME} {qtpy.QT_VERSION}")
    quiet_pyqt5_notice()

    viewer = napari.Viewer(title="napari-unet", show=True)
    viewer.window._qt_window.resize(1600, 1000)
    open_demo(viewer, args.sample)
    if not args.headless:
        napari.run()
        return 0
    for _ in range(20):
        QApplication.processEvents()
    args.screenshot.parent.mkdir(parents=True, exist_ok=True)
    viewer.screenshot(str(args.screenshot), canvas_only=False)
    viewer.close()
    print(f"screenshot saved: {args.screenshot.resolve()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
