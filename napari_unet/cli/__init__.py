"""The ``napari-unet`` command: predict, train, evaluate and weightmap, headless.

Exit codes: 0 success; 2 bad input (a missing, corrupt or empty file, NaN or
infinite pixels, a mask whose shape differs from its image, unequal numbers of
images and masks, an unreadable or unsafe model file, a device that is not
there, a bad option), reported as one ``error: ...`` line on stderr; 130 when
interrupted by Ctrl-C (143 for SIGTERM).  A ``train`` that is interrupted stops
after the current step, saves the best model so far (atomically) and exits
130; a second Ctrl-C aborts at once without saving, and the file at ``--out``
is never left half-written either way.

The package imports only the standard library (and the torch-free
``napari_unet.core.defaults``) at start-up so that ``--help`` is instant;
numpy, torch and the core modules are imported by each command.  One module
per command (``predict``, ``train``, ``evaluate``, ``weightmap``) holds its
options and its work.
"""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence

from napari_unet import __version__
from napari_unet.cli import evaluate, predict, train, weightmap
from napari_unet.cli._common import _number, _one_line, _Parser, _ProgressBar, _UsageError
from napari_unet.cli._defaults import (
    FINE_TUNE_LR,
    LOSS_NAMES,
    PREDICT_MIN_TILE_SIZE,
    PREDICT_TILE_SIZE,
    REPLAY_FRACTION,
    SCRATCH_LR,
    TRAIN_DEFAULTS,
)

__all__ = [
    "FINE_TUNE_LR",
    "LOSS_NAMES",
    "PREDICT_MIN_TILE_SIZE",
    "PREDICT_TILE_SIZE",
    "REPLAY_FRACTION",
    "SCRATCH_LR",
    "TRAIN_DEFAULTS",
    "_ProgressBar",
    "build_parser",
    "main",
]


def build_parser() -> argparse.ArgumentParser:
    """Build the ``napari-unet`` argument parser (no heavy imports).

    Returns
    -------
    argparse.ArgumentParser
        The parser with the predict, train, evaluate and weightmap subcommands.
    """
    parser = _Parser(
        prog="napari-unet",
        description="U-Net segmentation without the GUI: predict, train, evaluate, weightmap.",
        epilog="Exit codes: 0 ok, 2 bad input (one 'error:' line on stderr), "
        "130 interrupted (train saves the best model so far first).",
    )
    parser.add_argument("--version", action="version", version=f"napari-unet {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    positive = _number(int, 1)
    device_help = "auto (CUDA, then MPS, then CPU), cpu, cuda, cuda:N or mps (default: auto)"
    for command in (predict, train, evaluate, weightmap):
        command.add_parser(sub, positive, device_help)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``napari-unet`` command line.

    Parameters
    ----------
    argv
        Arguments without the program name (default: ``sys.argv[1:]``).

    Returns
    -------
    int
        The exit code: 0 success, 2 bad input, 130 interrupted.
    """
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except _UsageError as exc:
        print(f"error: {_one_line(exc)}", file=sys.stderr)
        return 2
    except SystemExit as exc:  # --help and --version
        return int(exc.code or 0)

    from napari_unet.core.errors import InputError

    # Library warnings are held back: a failed run prints only its one error line,
    # a successful one prints each distinct warning as one line at the end.
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("default")
        try:
            code = args.func(args)
        except InputError as exc:
            print(f"error: {_one_line(exc)}", file=sys.stderr)
            return 2
        except OSError as exc:  # unwritable output, full disk, a file that vanished midway
            where = f" {exc.filename}" if exc.filename else ""
            reason = exc.strerror or _one_line(exc)
            print(f"error: cannot access{where}: {reason}", file=sys.stderr)
            return 2
        except KeyboardInterrupt:
            print("interrupted; no output was left half-written", file=sys.stderr)
            return 130
    for text in dict.fromkeys(f"{w.category.__name__}: {_one_line(w.message)}" for w in caught):
        print(f"warning: {text}", file=sys.stderr)
    return code
