"""Compute devices: choosing one that exists, mixed precision and memory layout.

``"auto"`` picks CUDA, then Apple MPS, then the CPU; every other name is
checked against the hardware here, so a bad ``--device`` fails with one line
instead of a traceback deep inside torch.
"""

from __future__ import annotations

import contextlib
from typing import TypeVar

import torch
from torch import nn

from napari_unet.core.errors import DeviceError

ModuleT = TypeVar("ModuleT", bound=nn.Module)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """Turn a device name into a :class:`torch.device` that exists here.

    Parameters
    ----------
    name
        ``"auto"`` (CUDA, then Apple MPS, then CPU), ``"cpu"``, ``"cuda"``,
        ``"cuda:N"`` or ``"mps"``.

    Returns
    -------
    torch.device

    Raises
    ------
    DeviceError
        The named device is not present on this machine or the name is unknown.
    """
    text = str(name).strip().lower()
    if text in ("", "auto"):
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise DeviceError(f"unknown device {name!r}; use auto, cpu, cuda or mps") from None
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        if not torch.cuda.is_available():
            raise DeviceError("device 'cuda' is not available on this machine; use auto or cpu")
        if device.index is not None and device.index >= torch.cuda.device_count():
            raise DeviceError(
                f"device {text!r} is not present ({torch.cuda.device_count()} CUDA GPU(s)); "
                "use cuda or auto"
            )
        return device
    if device.type == "mps":
        if not _mps_available():
            raise DeviceError("device 'mps' is not available on this machine; use auto or cpu")
        return device
    raise DeviceError(f"unsupported device {name!r}; use auto, cpu, cuda or mps")


def available_devices() -> list[tuple[str, str]]:
    """List the devices present here as ``(value, label)`` pairs, ``auto`` first.

    Returns
    -------
    list of tuple of str
        e.g. ``[("auto", "auto"), ("cuda", "cuda: NVIDIA H100"), ("cpu", "cpu")]``;
        the values are accepted by :func:`resolve_device`.
    """
    devices = [("auto", "auto")]
    if torch.cuda.is_available():
        count = torch.cuda.device_count()
        for index in range(count):
            value = "cuda" if count == 1 else f"cuda:{index}"
            devices.append((value, f"{value}: {torch.cuda.get_device_name(index)}"))
    if _mps_available():
        devices.append(("mps", "mps: Apple GPU"))
    devices.append(("cpu", "cpu"))
    return devices


def autocast(device: str | torch.device) -> contextlib.AbstractContextManager[None]:
    """Mixed-precision context for ``device``.

    On CUDA this is ``torch.autocast`` with bfloat16 where the GPU supports it,
    else float16; on every other device it does nothing (CPU autocast is slower
    than float32 on most CPUs).
    """
    device = torch.device(device) if not isinstance(device, torch.device) else device
    if device.type != "cuda":
        return contextlib.nullcontext()
    dtype = torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float16
    return torch.autocast("cuda", dtype=dtype)


def prepare_for_device(model: ModuleT, device: torch.device) -> ModuleT:
    """Move ``model`` to ``device`` in place, channels-last on CUDA; return it."""
    model.to(device)
    if device.type == "cuda":
        model.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # torch's stubs lack it
    return model
