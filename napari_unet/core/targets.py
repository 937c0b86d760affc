"""Training targets: touching objects pulled apart, and the object rims.

The U-Net paper separates touching objects of the same class by a one-pixel
background gap in the training target (:func:`separation_border`), and pairs
the target with its border-weight map (:func:`target_and_weights`, the map of
:mod:`napari_unet.core.weights`).  A two-output model also learns the object
rims (:func:`boundary_target`), packed with the foreground into one array
(:data:`BOUNDARY_BIT`).
"""

from __future__ import annotations

import numpy as np
from scipy import ndimage as ndi

from napari_unet.core.postprocess import STRUCTURE_2D, as_instances, is_binary, relabel_sequential
from napari_unet.core.weights import _check_labels, border_weight_map

#: Training targets of two-output models pack both outputs in one uint8 array
#: so that patches and augmentation move them together: bit 0 (value 1) is the
#: foreground target, this bit the :func:`boundary_target`.
BOUNDARY_BIT = 2
#: Bit of a target code whose foreground target is unknown: the loss ignores
#: the pixel (pseudo-labels' uncertain pixels, :mod:`napari_unet.core.pseudo_labels`).
IGNORE_BIT = 4
#: Bit of a target code whose rim target is unknown: the rim loss ignores it.
IGNORE_RIM_BIT = 8

#: Pixels by which :func:`boundary_target` widens contacts between objects, each side.
CONTACT_WIDTH = 1
#: A three-output model's third target, :func:`distance_target`, sits in the
#: code's top four bits: ``code >> DISTANCE_SHIFT`` is its level, 0 to
#: :data:`DISTANCE_LEVELS`.
DISTANCE_SHIFT = 4
DISTANCE_LEVELS = 15


def separation_border(labels: np.ndarray) -> np.ndarray:
    """Pixels where two different objects touch (the paper's separation border).

    A pixel belongs to the border when it is foreground and one of its 8
    neighbours (3x3 neighbourhood) carries a *different* positive label.  Both
    sides of a contact are marked, so removing the border leaves a gap of
    about two pixels between touching objects and no two objects 8-connected.
    Background and the image edge never create a border; a binary mask has no
    touching objects (its objects are its connected components), so its border
    is empty.

    Parameters
    ----------
    labels : np.ndarray
        Instance labels, ``(Y, X)`` or ``(Z, Y, X)`` (per slice; neighbours
        never cross slices).

    Returns
    -------
    np.ndarray
        Boolean array of the labels' shape.
    """
    a = _check_labels(labels)
    if is_binary(a):
        return np.zeros(a.shape, dtype=bool)
    if a.max(initial=0) >= 2**52:
        a = relabel_sequential(a)  # ids must stay exact as floats (see cval below)
    lab = np.where(a > 0, a, 0).astype(np.int64, copy=False)
    footprint = STRUCTURE_2D if a.ndim == 2 else STRUCTURE_2D[None]
    # Stand-in for "no object" in the minimum; scipy passes cval as a float, so
    # it must stay small enough to round-trip (not the int64 maximum).
    big = int(lab.max()) + 1
    # Largest and smallest positive label around each pixel: an object pixel
    # touches another object exactly when one of them differs from its own id.
    highest = ndi.maximum_filter(lab, footprint=footprint, mode="constant", cval=0)
    lowest = ndi.minimum_filter(
        np.where(lab > 0, lab, big), footprint=footprint, mode="constant", cval=big
    )
    return (lab > 0) & ((highest > lab) | (lowest < lab))


def boundary_target(labels: np.ndarray, contact_width: int = CONTACT_WIDTH) -> np.ndarray:
    """Object rims: the target of a model's second (boundary) output.

    A pixel is on the rim when it belongs to an object and one of its 8
    neighbours (3x3, never across slices) is background or another object; the
    image edge does not count.  Where two objects touch, the rim is widened by
    ``contact_width`` pixels into both objects, so touching objects are parted
    by a band ``2 + 2 * contact_width`` pixels wide: a one-pixel line between
    two bright nuclei is what a network learns last, and a seed leaks through
    any gap in it.  The interior of each object, the foreground minus the
    rims, is a seed of its own for
    :func:`napari_unet.core.instances.instances_from_maps`.

    Parameters
    ----------
    labels : np.ndarray
        Instance labels or binary mask, ``(Y, X)`` or ``(Z, Y, X)``; a binary
        mask is split into 8-connected components (which never touch).
    contact_width : int
        Pixels by which contacts between objects are widened on each side.

    Returns
    -------
    np.ndarray
        Boolean array of the labels' shape.
    """
    inst = as_instances(_check_labels(labels)).astype(np.int64, copy=False)
    footprint = STRUCTURE_2D if inst.ndim == 2 else STRUCTURE_2D[None]
    # Edge pixels copy their own id (mode "nearest"), so the edge makes no rim.
    highest = ndi.maximum_filter(inst, footprint=footprint, mode="nearest")
    lowest = ndi.minimum_filter(inst, footprint=footprint, mode="nearest")
    rim = (inst > 0) & ((highest != inst) | (lowest != inst))
    if contact_width > 0:
        contacts = separation_border(inst)
        if contacts.any():
            wide = ndi.binary_dilation(contacts, footprint, iterations=int(contact_width))
            rim |= wide & (inst > 0)
    return rim


def distance_target(labels: np.ndarray) -> np.ndarray:
    """Each object's distance to its own edge, scaled to its centre: the third output's target.

    Within every object (per slice) the Euclidean distance to the nearest
    pixel outside it, background or another object, divided by the object's
    largest such distance, so 1 at its centre whatever its size, and falling
    to the edge, contacts with touching objects included.  Its peaks are one
    per object, which is what seeds a watershed
    (:func:`napari_unet.core.instances.split_objects`); a zoom leaves it
    unchanged, so patches may be resampled with it.

    Parameters
    ----------
    labels : np.ndarray
        Instance labels or binary mask, ``(Y, X)`` or ``(Z, Y, X)``.

    Returns
    -------
    np.ndarray
        uint8 levels 0 (background) to :data:`DISTANCE_LEVELS` (centres);
        object pixels are at least 1.
    """
    inst = as_instances(_check_labels(labels)).astype(np.int64, copy=False)
    # Edge pixels (next to background or another object) are the rims without
    # widened contacts; every other object pixel counts its distance to them.
    edge = boundary_target(inst, contact_width=0)
    out = np.zeros(inst.shape, dtype=np.uint8)
    stacked = (inst, edge, out) if inst.ndim == 3 else (inst[None], edge[None], out[None])
    for plane, rim, view in zip(*stacked, strict=True):
        if not plane.any():
            continue
        inside = plane > 0
        distance = ndi.distance_transform_edt(inside & ~rim) + inside
        peak = np.asarray(ndi.maximum(distance, plane, index=np.arange(int(plane.max()) + 1)))
        level = np.ceil(DISTANCE_LEVELS * distance / np.maximum(peak[plane], 1e-9))
        view[...] = np.where(inside, np.clip(level, 1, DISTANCE_LEVELS), 0)
    return out


def training_target(labels: np.ndarray, separate: bool = True) -> np.ndarray:
    """Foreground target for training, with touching objects pulled apart.

    Parameters
    ----------
    labels : np.ndarray
        Instance labels or binary mask, ``(Y, X)`` or ``(Z, Y, X)``.
    separate : bool
        Remove the :func:`separation_border` from the foreground, so that the
        network learns to leave a gap between touching objects and connected
        components of its output recover the instances.

    Returns
    -------
    np.ndarray
        uint8 array, 1 for foreground and 0 for background.
    """
    a = _check_labels(labels)
    fg = a > 0
    if separate:
        fg &= ~separation_border(a)
    return fg.astype(np.uint8)


def target_and_weights(
    labels: np.ndarray, *, separate: bool = True, w0: float = 10.0, sigma: float = 5.0
) -> tuple[np.ndarray, np.ndarray]:
    """Training target and its border-weight map, as the paper pairs them.

    Parameters
    ----------
    labels : np.ndarray
        Instance labels or binary mask, ``(Y, X)`` or ``(Z, Y, X)``.
    separate : bool
        Separate touching objects (see :func:`training_target`).
    w0, sigma : float
        Border-term parameters (see :func:`border_weight_map`).

    Returns
    -------
    target : np.ndarray
        uint8 0/1 target.
    weights : np.ndarray
        float32 map of :func:`border_weight_map` computed on the objects that
        remain in the target, so the separation gaps get the border weight.
    """
    a = _check_labels(labels)
    target = training_target(a, separate=separate)
    inst = as_instances(a)
    weights = border_weight_map(np.where(target > 0, inst, 0), w0=w0, sigma=sigma)
    return target, weights
