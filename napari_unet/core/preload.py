"""Load torch's main compiled library without holding Python's interpreter lock.

When Python imports a compiled module it holds the interpreter lock while the
system loader maps the library and runs its static initialisers.  For torch's
``libtorch_cpu`` (over 400 MB on Linux) that is about 0.25 s warm and more from
a cold disk, and a thread that imports torch in the background then blocks the
main thread, and a GUI's event loop, for all of it.

A call into a C function through :mod:`ctypes` lets the lock go, so calling the
system's ``dlopen`` on the library first does the same loading while the main
thread runs on.  The later ``import torch`` finds the library already loaded
and reuses it; its own longest hold of the lock is then about 60 ms here
(a scratch loop like ``benchmarks/bench_import_gap.py``, against 230-320 ms).
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
import sys
from pathlib import Path

#: The library whose loading is the long hold; its dependencies (c10, the
#: OpenMP runtime) load with it.  Libraries that need a GPU runtime are left
#: to torch, which chooses where those come from.
_LIBRARY = "libtorch_cpu"
_SUFFIXES = {"linux": ".so", "darwin": ".dylib"}
_handles: list[int] = []  # kept, so the libraries stay loaded


def torch_library() -> Path | None:
    """Return the path of torch's ``libtorch_cpu`` for this platform, without importing torch."""
    suffix = next((s for p, s in _SUFFIXES.items() if sys.platform.startswith(p)), None)
    if suffix is None:
        return None
    try:
        spec = importlib.util.find_spec("torch")
    except (ImportError, ValueError):
        return None
    if spec is None or spec.origin is None:
        return None
    path = Path(spec.origin).parent / "lib" / f"{_LIBRARY}{suffix}"
    return path if path.is_file() else None


def preload_torch_library() -> bool:
    """Load ``libtorch_cpu`` with the interpreter lock released; True if it is loaded.

    Meant for a background thread that is about to import torch.  Does nothing
    once torch is imported, on platforms without ``dlopen`` or where the library
    is not found; any failure leaves the import to load it as usual.
    """
    if "torch" in sys.modules:
        return False
    path = torch_library()
    if path is None:
        return False
    try:
        loader = ctypes.CDLL(None)  # the process itself, where dlopen is
        dlopen = loader.dlopen
    except (OSError, AttributeError):
        return False
    dlopen.restype = ctypes.c_void_p
    dlopen.argtypes = [ctypes.c_char_p, ctypes.c_int]
    handle = dlopen(os.fsencode(path), os.RTLD_NOW)
    if not handle:
        return False
    _handles.append(handle)
    return True
