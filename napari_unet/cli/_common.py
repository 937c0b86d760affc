"""Shared pieces of the command line: option types, the progress bar, input checks."""

from __future__ import annotations

import argparse
import math
import os
import re
from collections.abc import Sequence
from pathlib import Path
from typing import NoReturn, TextIO


class _UsageError(Exception):
    """A command-line usage error, reported as one ``error:`` line."""


class _Parser(argparse.ArgumentParser):
    """ArgumentParser whose errors are one line instead of usage text plus a line."""

    def error(self, message: str) -> NoReturn:
        raise _UsageError(f"{message}; see '{self.prog} --help'")


# ----------------------------------------------------------------------------- option types


def _number(kind: type, low: float | None = None, high: float | None = None, *, open_low=False):
    def parse(text: str):
        try:
            value = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if isinstance(value, float) and not math.isfinite(value):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        too_low = low is not None and (value <= low if open_low else value < low)
        if too_low or (high is not None and value > high):
            lo = "" if low is None else f"{'>' if open_low else '>='} {low}"
            hi = "" if high is None else f"<= {high}"
            raise argparse.ArgumentTypeError(
                f"{text} is out of range (must be {' and '.join(s for s in (lo, hi) if s)})"
            )
        return value

    parse.__name__ = kind.__name__  # argparse names the type in its messages
    return parse


_DEVICE_RE = re.compile(r"^(auto|cpu|mps|cuda(:\d+)?)$")


def _device(text: str) -> str:
    if not _DEVICE_RE.match(text.strip().lower()):
        raise argparse.ArgumentTypeError(f"unknown device {text!r}; use auto, cpu, cuda or mps")
    return text.strip().lower()


# ----------------------------------------------------------------------------- progress


class _ProgressBar:
    """Text progress on a stream: a live bar on a terminal, one line per epoch otherwise."""

    def __init__(self, stream: TextIO, width: int = 24) -> None:
        self.stream = stream
        self.width = width
        self.live = bool(getattr(stream, "isatty", lambda: False)())
        self.prefix = ""
        self._width = 0  # length of the live line on screen; 0 when none

    def bar(self, fraction: float) -> str:
        """Return ``[####----]`` filled to ``fraction``."""
        done = int(round(self.width * min(max(fraction, 0.0), 1.0)))
        return "[" + "#" * done + "-" * (self.width - done) + "]"

    def progress(self, step: int, total: int, message: str = "") -> None:
        """Redraw the live bar (terminals only)."""
        if not self.live or total <= 0:
            return
        text = f"{self.prefix}{self.bar(step / total)} {step}/{total} {message}"[:160]
        # Pad to the previous length so that a shorter line leaves no stale characters.
        self.stream.write("\r" + text.ljust(self._width))
        self.stream.flush()
        self._width = len(text)

    def line(self, text: str) -> None:
        """Print a permanent line, clearing the live bar first."""
        if self._width:
            self.stream.write("\r" + " " * self._width + "\r")
            self._width = 0
        self.stream.write(text + "\n")
        self.stream.flush()

    def close(self) -> None:
        if self._width:
            self.stream.write("\n")
            self.stream.flush()
            self._width = 0


def _duration(seconds: float | None) -> str:
    if seconds is None or not math.isfinite(seconds):
        return "?"
    seconds = int(round(seconds))
    minutes, secs = divmod(seconds, 60)
    hours, minutes = divmod(minutes, 60)
    return f"{hours}h{minutes:02d}m" if hours else f"{minutes}m{secs:02d}s"


def _dice_text(value: float) -> str:
    return "n/a" if value is None or not math.isfinite(value) else f"{value:.4f}"


# ----------------------------------------------------------------------------- helpers


def _output_stem(path: Path) -> str:
    stem = path.stem
    return stem[:-4] if stem.lower().endswith(".ome") else stem


def _check_pair_counts(first: Sequence, second: Sequence, a: str, b: str, what: str) -> None:
    from napari_unet.core.errors import InputError

    if len(first) != len(second):
        raise InputError(
            f"{a} gives {len(first)} file(s) but {b} gives {len(second)}; "
            f"give one {what} per file, in the same order"
        )


def _check_same_shape(mask, mask_path, shape, image_path, what: str = "mask") -> None:
    from napari_unet.core.errors import InputError

    if tuple(mask.shape) != tuple(shape):
        raise InputError(
            f"{what} {mask_path} has shape {tuple(mask.shape)} but {image_path} has "
            f"{tuple(shape)}; each {what} must match its image pixel for pixel"
        )


def _check_output_file(path: Path) -> None:
    """Fail before long work, not after, when ``path`` cannot be written."""
    from napari_unet.core.errors import InputError

    if path.is_dir():
        raise InputError(f"--out {path} is a folder; give a file name such as {path / 'model.pt'}")
    path.parent.mkdir(parents=True, exist_ok=True)
    if not os.access(path.parent, os.W_OK):
        raise InputError(f"cannot write to folder {path.parent}; choose another --out")


def _one_line(exc: BaseException) -> str:
    return " ".join(str(exc).split()) or type(exc).__name__
