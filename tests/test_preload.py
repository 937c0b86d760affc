"""torch's main library loads before ``import torch``, and torch works after it."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/maps")
def test_preload_maps_libtorch_cpu_before_torch_is_imported_and_torch_then_works():
    # A fresh interpreter: this one has imported torch already.
    code = textwrap.dedent(
        """
        import os, sys, threading
        from napari_unet.core.preload import preload_torch_library, torch_library

        def mapped():
            with open("/proc/self/maps") as maps:
                return os.path.realpath(torch_library()) in maps.read()

        assert torch_library().name == "libtorch_cpu.so"
        assert not mapped()
        done = []
        thread = threading.Thread(target=lambda: done.append(preload_torch_library()))
        thread.start()
        thread.join(120)
        assert done == [True], done
        assert mapped() and "torch" not in sys.modules
        import torch
        assert float(torch.ones(4) @ torch.ones(4)) == 4.0
        assert not preload_torch_library()  # once torch is in, nothing to do
        print("ok")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "ok"
