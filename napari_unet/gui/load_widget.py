"""Load images: image files or a folder, with masks paired by name as Labels layers."""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from napari.utils.notifications import show_error, show_info
from qtpy.QtWidgets import QFileDialog, QLabel, QPushButton, QVBoxLayout, QWidget

from napari_unet.core.errors import InputError

if TYPE_CHECKING:
    import napari

IMAGE_FILTER = "Images (*.tif *.tiff *.png *.TIF *.TIFF *.PNG);;All files (*)"
GROUND_TRUTH_SUFFIX = " ground truth"


class LoadImagesWidget(QWidget):
    """Open images (PNG, TIFF, stacks) and their masks, paired by file name.

    ``x.tif`` pairs with ``x_mask.tif`` or ``masks/x.tif``.  Each image
    becomes an Image layer named after its file stem, each mask a Labels layer
    named ``"<stem> ground truth"``.  Problems appear as napari notifications
    with a one-line reason; the other files still load.

    Parameters
    ----------
    napari_viewer
        The viewer the layers are added to.
    """

    def __init__(self, napari_viewer: napari.viewer.Viewer) -> None:
        super().__init__()
        self.viewer = napari_viewer
        self.files_button = QPushButton("Open image files...")
        self.folder_button = QPushButton("Open folder...")
        self.status = QLabel("Masks pair by name: x.tif with x_mask.tif or masks/x.tif.")
        self.status.setWordWrap(True)
        self.files_button.clicked.connect(self._choose_files)
        self.folder_button.clicked.connect(self._choose_folder)
        layout = QVBoxLayout(self)
        layout.addWidget(self.files_button)
        layout.addWidget(self.folder_button)
        layout.addWidget(self.status)
        layout.addStretch(1)

    def _choose_files(self) -> None:
        paths, _ = QFileDialog.getOpenFileNames(self, "Open images and masks", "", IMAGE_FILTER)
        if paths:
            self.load_paths(paths)

    def _choose_folder(self) -> None:
        folder = QFileDialog.getExistingDirectory(self, "Open a folder of images")
        if folder:
            self.load_paths([folder])

    def load_paths(self, paths: Iterable[str | Path]) -> list[Any]:
        """Read images and their paired masks and add them to the viewer.

        Parameters
        ----------
        paths
            Image (and mask) files, or a single folder.

        Returns
        -------
        list
            The layers that were added (images and masks).
        """
        from napari_unet.core.io import pair_images_and_masks, read_image, read_mask

        paths = [Path(p) for p in paths]
        source: Any = paths[0] if len(paths) == 1 and paths[0].is_dir() else paths
        try:
            pairs = pair_images_and_masks(source)
        except InputError as exc:
            show_error(f"Load images: {exc}")
            return []
        if not pairs:
            show_error("Load images: no PNG or TIFF images found there; choose image files.")
            return []

        added: list[Any] = []
        n_images = n_masks = 0
        for image_path, mask_path in pairs:
            stem = Path(image_path).stem
            try:
                image = read_image(image_path)
            except InputError as exc:
                show_error(f"Load images: {exc}")
                continue
            image_layer = self.viewer.add_image(image, name=stem)
            added.append(image_layer)
            n_images += 1
            if mask_path is None:
                continue
            try:
                mask = read_mask(mask_path)
            except InputError as exc:
                show_error(f"Load images: {exc}")
                continue
            if mask.shape != _spatial_shape(image_layer):
                show_error(
                    f"Load images: mask {Path(mask_path).name} is {mask.shape} but "
                    f"{Path(image_path).name} is {_spatial_shape(image_layer)}; "
                    "give a mask of the image's size."
                )
                continue
            labels = self.viewer.add_labels(
                mask,
                name=f"{stem}{GROUND_TRUTH_SUFFIX}",
                scale=image_layer.scale,
                translate=image_layer.translate,
            )
            added.append(labels)
            n_masks += 1
        if n_images:
            message = f"Loaded {n_images} image(s) and {n_masks} mask(s)."
            self.status.setText(message)
            show_info(message)
        return added


def _spatial_shape(layer: Any) -> tuple[int, ...]:
    """Shape of an image layer without its RGB(A) channel axis."""
    from napari_unet.core.images import spatial_shape

    return spatial_shape(layer.data, rgb=layer.rgb)
