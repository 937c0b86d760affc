"""Reading images and masks, writing TIFFs atomically, pairing images with masks.

Every problem with a user's file (missing, unreadable, empty, NaN or infinite
pixels, an unsupported shape) becomes an :class:`~napari_unet.core.errors.InputError`
whose one-line message names the file and says what to fix, so the command
line and the GUI can show it as is.

Masks follow one rule everywhere: a pixel whose label is greater than zero is
foreground.  A mask with a single non-zero value (0/1, 0/255, 0/65535, ...) is
returned as a 0/1 ``uint8`` array, so that a 0/255 mask is never mistaken for
grey values; a mask with several non-zero values keeps its instance ids.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path

import numpy as np

from napari_unet.core.atomic import atomic_open
from napari_unet.core.errors import InputError
from napari_unet.core.images import spatial_shape  # public here too, where it began

__all__ = [
    "IMAGE_SUFFIXES",
    "MASK_DIRS",
    "MASK_SUFFIXES",
    "find_mask",
    "pair_images_and_masks",
    "read_image",
    "read_mask",
    "spatial_shape",
    "write_tiff",
]

#: File extensions read as images (lower case).
IMAGE_SUFFIXES = (".tif", ".tiff", ".png", ".jpg", ".jpeg", ".bmp")
#: Name endings that mark ``x<ending>.tif`` as the mask of ``x.tif``.
MASK_SUFFIXES = (
    "_mask",
    "_masks",
    "_label",
    "_labels",
    "_gt",
    "_seg",
    "_segmentation",
)
#: Folders, inside or beside an image's folder, that hold masks named like the images.
MASK_DIRS = ("masks", "mask", "labels", "label", "gt", "ground_truth")

_TIFF_SUFFIXES = (".tif", ".tiff")


def _check_file(path: Path, what: str) -> None:
    if not path.exists():
        raise InputError(f"{what} file not found: {path}; check the path")
    if path.is_dir():
        raise InputError(f"{path} is a folder, not an {what} file; give the file's path")
    if path.stat().st_size == 0:
        raise InputError(f"{what} file {path} is empty (0 bytes); re-export or replace it")


def _read_tiff(path: Path) -> tuple[np.ndarray, bool]:
    """Return the first series and whether it carries colour samples (RGB/RGBA)."""
    import tifffile

    with tifffile.TiffFile(path) as tif:
        series = tif.series[0]
        data = series.asarray()
        axes = series.axes
    if len(axes) != data.ndim:  # unusual layouts: fall back to the plain array
        return data, False
    has_samples = "S" in axes and data.shape[axes.index("S")] in (3, 4)
    if has_samples:
        # Planar RGB is stored (S, Y, X); the rest of the package expects samples last.
        data = np.moveaxis(data, axes.index("S"), -1)
    return data, has_samples


def _read_other(path: Path, keep_palette: bool) -> tuple[np.ndarray, bool]:
    """Read PNG/JPEG/BMP; return the array and whether it carries colour samples."""
    import imageio.v3 as iio

    mode = iio.immeta(path).get("mode", "")
    if keep_palette and mode == "P":
        # A palette mask stores labels as indices; applying the palette would turn
        # them into colours.
        return iio.imread(path, mode="P"), False
    data = iio.imread(path)
    if data.ndim == 3 and data.shape[-1] == 2:  # grey + alpha: the alpha is not image data
        data = data[..., 0]
    return data, data.ndim == 3


def _read_raw(path: Path, what: str, keep_palette: bool = False) -> tuple[np.ndarray, bool]:
    _check_file(path, what)
    try:
        if path.suffix.lower() in _TIFF_SUFFIXES:
            data, rgb = _read_tiff(path)
        else:
            data, rgb = _read_other(path, keep_palette)
    except MemoryError:
        raise
    except Exception as exc:  # every reader failure means the same thing to the user
        reason = _reason(exc)
        raise InputError(
            f"cannot read {what} file {path} ({reason}); "
            "is it a valid PNG/TIFF/JPEG file? re-export it"
        ) from exc
    data = np.asarray(data)
    # Drop singleton axes (e.g. a one-page ImageJ hyperstack) but never below 2D.
    min_ndim = 3 if rgb else 2
    while data.ndim > min_ndim and 1 in data.shape[: data.ndim - (1 if rgb else 0)]:
        data = np.squeeze(data, axis=data.shape.index(1))
    if data.size == 0:
        raise InputError(
            f"{what} file {path} has no pixels (shape {data.shape}); export a non-empty image"
        )
    return data, rgb


def _reason(exc: Exception) -> str:
    """Return a short, user-facing reason for a reader's exception."""
    text = " ".join(str(exc).split())
    if not text or "Could not find a backend" in text:  # imageio's words for "not an image"
        return "unrecognised or corrupt data"
    text = text.split(". ")[0]
    return text if len(text) <= 80 else text[:77] + "..."


def _check_values(data: np.ndarray, path: Path, what: str) -> np.ndarray:
    if data.dtype == bool:
        return data.astype(np.uint8)
    if np.iscomplexobj(data) or data.dtype.kind not in "uif":
        raise InputError(
            f"{what} file {path} has unsupported pixel type {data.dtype}; "
            "save it as integer or float"
        )
    if data.dtype.kind == "f":
        if data.dtype.itemsize < 4:
            data = data.astype(np.float32)
        bad = int(np.count_nonzero(~np.isfinite(data)))
        if bad:
            raise InputError(
                f"{what} file {path} has {bad} NaN or infinite pixel(s); "
                "replace them with finite values (e.g. 0) and save again"
            )
    return data


def read_image(path: str | os.PathLike) -> np.ndarray:
    """Read an image as a numpy array with its own dtype.

    Parameters
    ----------
    path
        A TIFF (8/16/32-bit integer or float, multi-page stacks, RGB/RGBA) or a
        PNG/JPEG/BMP file.

    Returns
    -------
    numpy.ndarray
        ``(H, W)``, ``(H, W, 3|4)`` for colour, ``(Z, H, W)`` for a stack or
        ``(Z, H, W, 3|4)`` for a colour stack. Booleans become ``uint8``; half
        floats become ``float32``.

    Raises
    ------
    InputError
        The file is missing, empty, unreadable, has no pixels, has NaN or
        infinite pixels, or has more dimensions than a colour stack.
    """
    path = Path(path)
    data, rgb = _read_raw(path, "image")
    max_ndim = 4 if rgb else 3
    if data.ndim < 2 or data.ndim > max_ndim:
        raise InputError(
            f"image file {path} has shape {data.shape}; napari-unet reads 2D images, "
            "RGB(A) images and stacks (Z, Y, X): split it into such files"
        )
    return _check_values(data, path, "image")


def read_mask(path: str | os.PathLike) -> np.ndarray:
    """Read a mask or label image; label > 0 is foreground.

    Parameters
    ----------
    path
        A TIFF or PNG mask: binary (0/1, 0/255, any single non-zero value),
        instance labels, a palette PNG (indices are labels) or an RGB(A)
        drawing (a pixel is foreground where any colour channel is non-zero
        and it is not transparent).

    Returns
    -------
    numpy.ndarray
        ``uint8`` 0/1 when the mask has one non-zero value (so 0/255 is never
        read as grey values); otherwise ``int32`` instance labels with their ids
        kept (negative values, which are not objects, become 0). The shape is
        ``(H, W)`` or ``(Z, H, W)`` for a stack.

    Raises
    ------
    InputError
        As :func:`read_image`, and for non-integer float values (a probability
        map, not a mask).
    """
    path = Path(path)
    data, rgb = _read_raw(path, "mask", keep_palette=True)
    if rgb:
        colour = data[..., :3] if data.shape[-1] >= 3 else data[..., :1]
        foreground = np.any(colour > 0, axis=-1)
        if data.shape[-1] == 4:  # transparent pixels are background whatever their colour
            foreground &= data[..., 3] > 0
        data = foreground
    if data.ndim not in (2, 3):
        raise InputError(
            f"mask file {path} has shape {data.shape}; a mask is 2D (Y, X) "
            "or a stack (Z, Y, X): split it into such files"
        )
    data = _check_values(data, path, "mask")
    if data.dtype.kind == "f":
        if not np.array_equal(data, np.round(data)):
            raise InputError(
                f"mask file {path} has non-integer values (a probability map?); "
                "threshold it or save integer labels (0 = background)"
            )
    values = np.unique(data)
    values = values[values > 0]
    if values.size <= 1:
        return (data > 0).astype(np.uint8)
    if values[-1] > np.iinfo(np.int32).max:
        raise InputError(f"mask file {path} has label ids above 2**31; relabel it")
    return np.where(data > 0, data, 0).astype(np.int32)


def write_tiff(path: str | os.PathLike, array: np.ndarray) -> Path:
    """Write an array to a TIFF atomically.

    The data goes to a temporary file in the same folder that then replaces
    ``path`` in one step, so an interrupted write never leaves a half-written
    file and never destroys the file that was there.

    Parameters
    ----------
    path
        Destination; its folder is created when missing.
    array
        2D image, ``(Z, H, W)`` stack (one page per slice) or colour image.

    Returns
    -------
    pathlib.Path
        The written path.
    """
    import tifffile

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    array = np.asarray(array)
    rgb = array.ndim == 3 and array.shape[-1] in (3, 4) and array.dtype in (np.uint8, np.uint16)
    with atomic_open(path, "wb") as handle:
        tifffile.imwrite(handle, array, photometric="rgb" if rgb else "minisblack")
    return path


def _is_image_file(path: Path) -> bool:
    hidden = path.name.startswith(".")
    return not hidden and path.suffix.lower() in IMAGE_SUFFIXES and path.is_file()


def _mask_base(path: Path) -> str | None:
    """Return the image stem that ``path`` is the mask of, judging by its name alone."""
    stem = path.stem
    for ending in MASK_SUFFIXES:
        if stem.lower().endswith(ending) and len(stem) > len(ending):
            return stem[: -len(ending)]
    return None


def _candidates(folder: Path, stem: str, prefer: str) -> Iterable[Path]:
    # Same extension first, so x.tif pairs with x_mask.tif before x_mask.png.
    suffixes = (prefer, *(s for s in IMAGE_SUFFIXES if s != prefer))
    for suffix in suffixes:
        yield folder / f"{stem}{suffix}"
        yield folder / f"{stem}{suffix.upper()}"


def find_mask(image: str | os.PathLike) -> Path | None:
    """Find the mask of an image on disk by the naming rules.

    For ``F/x.tif`` the candidates are, in order: ``F/x_mask.tif`` (and the other
    :data:`MASK_SUFFIXES`), ``F/masks/x.tif`` (and the other :data:`MASK_DIRS`,
    also with a mask ending), then the same folders beside ``F``
    (``F/../masks/x.tif``, the ``images/`` + ``masks/`` layout).

    Parameters
    ----------
    image
        Path of the image.

    Returns
    -------
    pathlib.Path or None
        The first candidate that exists.
    """
    image = Path(image)
    folder, stem, prefer = image.parent, image.stem, image.suffix.lower()
    names = [stem + ending for ending in MASK_SUFFIXES]
    searches: list[tuple[Path, list[str]]] = [(folder, names)]
    for base in (folder, folder.parent):
        for name in MASK_DIRS:
            sub = base / name
            if sub != folder and sub.is_dir():
                searches.append((sub, [stem, *names]))
    for where, stems in searches:
        for candidate_stem in stems:
            for candidate in _candidates(where, candidate_stem, prefer):
                if candidate.is_file() and candidate != image:
                    return candidate
    return None


def pair_images_and_masks(
    paths_or_folder: str | os.PathLike | Iterable[str | os.PathLike],
) -> list[tuple[Path, Path | None]]:
    """Pair image files with their masks by name.

    ``x.tif`` pairs with ``x_mask.tif`` (or ``x_masks``, ``x_label(s)``, ``x_gt``,
    ``x_seg``, ``x_segmentation``, any supported extension) or with
    ``masks/x.tif`` (or ``labels/``, ``gt/``, ... inside or beside the image's
    folder). A file named like a mask whose image is also given is a mask, not
    an image; a mask-named file without its image is kept as an image.

    Parameters
    ----------
    paths_or_folder
        A folder (its image files, not its sub-folders), one file, or several
        files and folders.

    Returns
    -------
    list of (pathlib.Path, pathlib.Path or None)
        ``(image, mask)`` in the order given (sorted by name within a folder);
        ``mask`` is None where none was found.

    Raises
    ------
    InputError
        A path does not exist, is not a supported image, or no image was found.
    """
    if isinstance(paths_or_folder, (str, os.PathLike)):
        given = [Path(paths_or_folder)]
    else:
        given = [Path(p) for p in paths_or_folder]
    files: list[Path] = []
    for path in given:
        if path.is_dir():
            files.extend(sorted((p for p in path.iterdir() if _is_image_file(p)), key=_name_key))
        elif path.is_file():
            if path.suffix.lower() not in IMAGE_SUFFIXES:
                raise InputError(
                    f"{path} is not a supported image ({', '.join(IMAGE_SUFFIXES)}); convert it"
                )
            files.append(path)
        else:
            raise InputError(f"file or folder not found: {path}; check the path")
    if not files:
        where = ", ".join(str(p) for p in given) or "the given paths"
        raise InputError(f"no PNG/TIFF/JPEG images found in {where}; choose another folder")
    files = list(dict.fromkeys(files))  # a file given twice is one image

    by_stem: dict[tuple[Path, str], Path] = {}
    for path in files:
        by_stem.setdefault((path.parent, path.stem.lower()), path)
    masks_given: dict[Path, Path] = {}
    for path in files:
        base = _mask_base(path)
        if base is None:
            continue
        image = by_stem.get((path.parent, base.lower()))
        if image is not None and image not in masks_given:
            masks_given[image] = path
    mask_files = set(masks_given.values())

    pairs: list[tuple[Path, Path | None]] = []
    for path in files:
        if path in mask_files:
            continue
        pairs.append((path, masks_given.get(path) or find_mask(path)))
    return pairs


def _name_key(path: Path) -> tuple[str, str]:
    return (path.name.lower(), path.name)
