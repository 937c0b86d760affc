import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import regionprops

from napari_unet.core.synthetic import ct_dataset, ct_slice, nuclei_image

CT_SEEDS = range(12)


@pytest.fixture(scope="module")
def ct_slices():
    return {seed: ct_slice(seed) for seed in CT_SEEDS}


def test_ct_slice_shapes_and_dtypes(ct_slices):
    image, lung, nodules = ct_slices[0]
    assert image.shape == lung.shape == nodules.shape == (512, 512)
    assert image.dtype == np.float32
    assert lung.dtype == bool
    assert nodules.dtype == np.int32
    assert np.isfinite(image).all()


def test_ct_slice_is_deterministic_per_seed(ct_slices):
    again = ct_slice(3)
    for first, second in zip(ct_slices[3], again, strict=True):
        np.testing.assert_array_equal(first, second)
    assert not np.array_equal(ct_slices[3][0], ct_slices[4][0])


def test_ct_slice_intensities_are_hounsfield_like(ct_slices):
    image, lung, nodules = ct_slices[1]
    assert np.median(image[:5, :5]) < -900  # air outside the body
    lung_only = lung & ~ndi.binary_dilation(nodules > 0, iterations=3)
    assert -950 < np.median(image[lung_only]) < -700
    assert image.max() > 300  # bone


def test_nodules_are_small_rare_round_and_inside_the_lungs(ct_slices):
    counts = []
    for image, lung, nodules in ct_slices.values():
        n = int(nodules.max())
        counts.append(n)
        assert 0 <= n <= 3
        assert np.array_equal(np.unique(nodules[nodules > 0]), np.arange(1, n + 1))
        assert (nodules > 0).mean() < 0.001
        assert lung[nodules > 0].all()
        for region in regionprops(nodules):
            assert region.feret_diameter_max < 20
            assert region.area >= 9  # at least about 4 px across
            assert region.eccentricity < 0.6  # round
            assert region.solidity > 0.85
        # Nodules are brighter than the lung around them.
        if n:
            ring = ndi.binary_dilation(nodules > 0, iterations=6) & ~ndi.binary_dilation(
                nodules > 0, iterations=3
            )
            assert image[nodules > 0].mean() > image[ring & lung].mean() + 300
    # The seeds cover empty slices and slices with several nodules.
    assert min(counts) <= 1 and max(counts) >= 2


def test_ct_slice_has_bright_thin_vessels_in_the_lungs(ct_slices):
    image, lung, nodules = ct_slices[2]
    bright = (image > -500) & lung & ~ndi.binary_dilation(nodules > 0, iterations=3)
    # Vessels: many bright lung pixels that are not nodules, in thin structures
    # (an opening with a 7x7 disk removes nearly all of them).
    assert bright.sum() > 1000
    opened = ndi.binary_opening(bright, structure=np.ones((7, 7)))
    assert opened.sum() < 0.1 * bright.sum()


def test_ct_slice_other_sizes():
    image, lung, nodules = ct_slice(5, size=256)
    assert image.shape == (256, 256)
    assert (nodules > 0).mean() < 0.001
    assert lung[nodules > 0].all()
    with pytest.raises(ValueError, match="size"):
        ct_slice(0, size=16)


def test_ct_dataset_matches_consecutive_seeds():
    images, lungs, labels = ct_dataset(2, seed=40, size=256)
    assert len(images) == len(lungs) == len(labels) == 2
    for i in range(2):
        image, lung, nodules = ct_slice(40 + i, size=256)
        np.testing.assert_array_equal(images[i], image)
        np.testing.assert_array_equal(lungs[i], lung)
        np.testing.assert_array_equal(labels[i], nodules)


def test_nuclei_image_shapes_dtypes_and_determinism():
    image, labels = nuclei_image(7)
    assert image.shape == labels.shape == (256, 256)
    assert image.dtype == np.uint16 and labels.dtype == np.int32
    again_image, again_labels = nuclei_image(7)
    np.testing.assert_array_equal(image, again_image)
    np.testing.assert_array_equal(labels, again_labels)
    assert not np.array_equal(image, nuclei_image(8)[0])


def test_nuclei_are_brighter_than_background_and_labelled_contiguously():
    image, labels = nuclei_image(1, size=384, contrast=50, density=0.25)
    n = int(labels.max())
    assert n > 20
    assert np.array_equal(np.unique(labels[labels > 0]), np.arange(1, n + 1))
    assert 0.1 < (labels > 0).mean() < 0.4
    assert image[labels > 0].mean() > image[labels == 0].mean() + 20


def test_some_nuclei_touch_with_no_background_between():
    touching = 0
    for seed in range(3):
        _, labels = nuclei_image(seed, density=0.3)
        grown = ndi.grey_dilation(labels, size=3)
        touching += np.count_nonzero((labels > 0) & (grown > labels))
    assert touching > 0


def test_nuclei_appearance_arguments_take_effect():
    _, small = nuclei_image(0, radius=6, density=0.2)
    _, large = nuclei_image(0, radius=14, density=0.2)
    area = [np.median([r.area for r in regionprops(lab)]) for lab in (small, large)]
    assert area[1] > 3 * area[0]
