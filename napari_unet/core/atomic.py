"""Atomic file writes: a file at the destination is always complete.

Models, masks and results are written to a temporary file in the destination
folder, flushed to disk and renamed over the destination in one step.  An
interrupted or failed write (an exception, Ctrl-C, a full disk) leaves the
file that was there before untouched and removes the temporary file.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Iterator
from pathlib import Path
from typing import IO


@contextlib.contextmanager
def atomic_open(path: str | os.PathLike, mode: str = "wb") -> Iterator[IO]:
    """Open a temporary file that replaces ``path`` when the block ends without error.

    Parameters
    ----------
    path
        Destination file; its folder is created when missing.
    mode
        ``"wb"`` for bytes or ``"w"`` for UTF-8 text.

    Yields
    ------
    IO
        The open temporary file.
    """
    if mode not in ("wb", "w"):
        raise ValueError(f"mode must be 'wb' or 'w', not {mode!r}")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.parent / f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp"
    # Exclusive-create mode, not mkstemp (whose files are private, 0600), so the
    # file gets the usual permissions from the umask like any other saved file.
    # Opened outside the try: a failed open must not unlink anything.
    handle = open(tmp, mode.replace("w", "x"), encoding=None if "b" in mode else "utf-8")
    try:
        with handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        # KeyboardInterrupt included: the old file at ``path`` is still intact.
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        # Make the rename itself durable (POSIX only; Windows cannot open folders).
        dir_fd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
