"""The main job: napari with every napari-unet widget docked and the sample loaded.

Run ``python -m napari_unet.gui.demo``.  With ``--headless`` (used on machines
without a display, on a virtual one) it saves a screenshot of the whole window,
prints its path and exits instead of handing control to the user.
"""

from __future__ import annotations

import argparse
from pathlib import Path

PLUGIN = "napari-unet"
# Display names from napari.yaml, in the order of the workflow; docked as tabs.
WIDGETS = [
    "Load images",
    "Segment",
    "Correct masks",
    "Fine-tune",
    "Border weight map",
    "Dice vs ground truth",
]


def open_demo(viewer, sample: str = "nuclei") -> dict:
    """Load ``sample`` into ``viewer`` and dock every widget; return them by name."""
    viewer.open_sample(PLUGIN, sample)
    docked = {}
    docks = {}
    for name in WIDGETS:
        dock, widget = viewer.window.add_plugin_dock_widget(PLUGIN, name, tabify=True)
        docked[name] = widget
        docks[name] = dock
    # Show the Segment widget on top: it is where a session starts.
    docks["Segment"].raise_()
    return docked


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

    import napari
    import qtpy
    from qtpy.QtWidgets import QApplication

    print(f"Qt binding: {qtpy.API_NAME} {qtpy.QT_VERSION}")

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
