"""Segment's background imports: what the first prediction needs is loaded before it runs."""

from __future__ import annotations

import subprocess
import sys
import textwrap


def test_prefetch_imports_the_prediction_modules_once_in_a_background_thread():
    # A fresh interpreter: in this one the test suite has imported everything already.
    code = textwrap.dedent(
        """
        import sys, threading
        from napari_unet.gui import _segment_run as run
        assert "napari_unet.core.inference" not in sys.modules
        assert "scipy.ndimage" not in sys.modules
        assert "skimage.color.colorconv" not in sys.modules
        thread = run.prefetch_prediction()
        assert thread is not threading.current_thread() and thread.daemon
        assert run.prefetch_prediction() is thread  # once per process
        thread.join(120)
        assert not thread.is_alive()
        # pandas and skimage's colour conversions: what napari's first Labels
        # layer would otherwise import on the main thread.
        first_labels = ("pandas", "skimage.color.colorconv")
        missing = [m for m in (*run.PREDICTION_MODULES, "scipy.ndimage", *first_labels)
                   if m not in sys.modules]
        assert not missing, missing
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"


def _run_fresh(code: str) -> None:
    done = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "ok", done.stdout


def test_building_the_panel_and_every_dock_loads_neither_torch_nor_scipy_modules():
    # Docking from the Plugins menu builds these on the main thread: importing
    # torch there froze the window for over a second.  The background imports
    # are switched off, so only the widgets' own imports count.
    _run_fresh(
        """
        import sys, threading, time
        import napari
        from qtpy.QtWidgets import QApplication
        from napari_unet.gui import _segment_run, docks
        from napari_unet.gui.panel import UNetPanel
        _segment_run._prefetch = threading.Thread()  # counts as started: nothing is prefetched
        viewer = napari.Viewer(show=False)
        widgets = [UNetPanel(viewer)]
        for name in ("LoadImagesDock", "SegmentDock", "CorrectMasksDock", "FineTuneDock",
                     "BorderWeightMapDock", "DiceDock"):
            widgets.append(getattr(docks, name)(viewer))
        end = time.perf_counter() + 1.0  # their first updates, the Dice widget's among them
        while time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.01)
        heavy = [m for m in ("torch", "scipy.ndimage", "scipy.optimize") if m in sys.modules]
        assert not heavy, heavy
        viewer.close()
        print("ok")
        """
    )


def test_segment_shown_lists_the_devices_once_the_background_imports_have_loaded_torch():
    _run_fresh(
        """
        import sys, time
        import napari
        from qtpy.QtWidgets import QApplication
        from napari_unet.gui.segment_widget import SegmentWidget
        viewer = napari.Viewer(show=False)
        widget = SegmentWidget(viewer)
        combo = widget.device_combo
        items = lambda: [combo.itemData(i) for i in range(combo.count())]
        assert items() == ["auto"], items()
        end = time.perf_counter() + 2.0
        while time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.02)
        # Not shown: the background imports have not started.
        assert items() == ["auto"] and "torch" not in sys.modules, items()
        widget.show()
        end = time.perf_counter() + 120
        while "cpu" not in items() and time.perf_counter() < end:
            QApplication.processEvents()
            time.sleep(0.02)
        assert items()[0] == "auto" and "cpu" in items(), items()
        assert combo.currentData() == "auto"
        assert "torch" in sys.modules
        viewer.close()
        print("ok")
        """
    )
