"""Errors that carry a one-line message telling the user what to fix."""

from __future__ import annotations


class InputError(ValueError):
    """Bad user input: a missing or unreadable file, a shape mismatch, NaNs, ...

    The message is a single line that says what is wrong and what to do.  The
    command line prints it as ``error: <message>`` and exits with code 2; the
    GUI shows it as a napari notification.
    """


class UnsafeCheckpointError(InputError):
    """A model file that would execute code when loaded, or is not a model."""


class DeviceError(InputError):
    """A compute device was requested that this machine does not have."""
