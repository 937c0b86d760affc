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
