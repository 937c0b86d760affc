import numpy as np
import pytest
from scipy import ndimage as ndi
from skimage.measure import label, regionprops

from napari_unet.core.synthetic import (
    CTConfig,
    ct_dataset,
    ct_phantom,
    ct_slice,
    nuclei_image,
)

CT_SEEDS = range(24)


@pytest.fixture(scope="module")
def phantoms():
    return {seed: ct_phantom(seed) for seed in CT_SEEDS}


def test_ct_slice_shapes_and_dtypes(phantoms):
    image, lung, nodules = ct_slice(0)
    assert image.shape == lung.shape == nodules.shape == (512, 512)
    assert image.dtype == np.float32
    assert lung.dtype == bool
    assert nodules.dtype == np.int32
    assert np.isfinite(image).all()
    phantom = phantoms[0]
    wanted = (phantom.image, phantom.lung, phantom.nodules)
    for got, want in zip((image, lung, nodules), wanted, strict=True):
        np.testing.assert_array_equal(got, want)
    assert phantom.solid.dtype == phantom.distractors.dtype == bool


def test_ct_slice_is_deterministic_per_seed(phantoms):
    again = ct_slice(3)
    first = phantoms[3]
    for a, b in zip((first.image, first.lung, first.nodules), again, strict=True):
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(phantoms[3].image, phantoms[4].image)


def test_ct_slice_intensities_are_hounsfield_like(phantoms):
    for seed in (1, 2):
        p = phantoms[seed]
        assert np.median(p.image[:5, :5]) < -900  # air outside the body
        lung_only = p.lung & ~ndi.binary_dilation((p.nodules > 0) | p.distractors, iterations=3)
        assert -950 < np.median(p.image[lung_only]) < -700
        assert p.image.max() > 300  # bone


def test_about_half_of_the_slices_hold_no_nodule(phantoms):
    counts = [int(p.nodules.max()) for p in phantoms.values()]
    assert set(counts) <= {0, 1, 2}
    assert 0.3 <= counts.count(0) / len(counts) <= 0.7
    assert counts.count(1) and counts.count(2)


def test_nodules_are_small_rare_round_and_inside_the_lungs(phantoms):
    diameters = []
    for p in phantoms.values():
        n = int(p.nodules.max())
        assert np.array_equal(np.unique(p.nodules[p.nodules > 0]), np.arange(1, n + 1))
        assert (p.nodules > 0).mean() < 0.002  # well under 1 %
        assert p.lung[ndi.binary_dilation(p.nodules > 0, iterations=2)].all()
        for region in regionprops(p.nodules):
            diameters.append(region.equivalent_diameter_area)
            assert region.area >= 5
            assert region.feret_diameter_max < 16
            if region.area >= 30:
                assert region.eccentricity < 0.6  # round
                assert region.solidity > 0.85
    assert all(2.5 <= d <= 14.5 for d in diameters)
    # The sizes span the range: some barely 3-5 px across, some over 10 px.
    assert min(diameters) < 5 and max(diameters) > 10


def test_nodules_are_brighter_than_the_lung_round_them(phantoms):
    for p in phantoms.values():
        for region in regionprops(p.nodules):
            nodule = p.nodules == region.label
            ring = ndi.binary_dilation(nodule, iterations=6) & ~ndi.binary_dilation(
                nodule, iterations=3
            )
            ring &= p.lung & ~p.distractors
            assert p.image[nodule].mean() > np.median(p.image[ring]) + 200


def test_part_solid_nodules_have_a_ground_glass_halo_inside_their_label(phantoms):
    part_solid = [(p, k) for p in phantoms.values() for k in p.part_solid]
    solid_only = [
        (p, k)
        for p in phantoms.values()
        for k in range(1, p.nodules.max() + 1)
        if k not in p.part_solid
    ]
    assert part_solid and solid_only
    for p, k in part_solid:
        nodule = p.nodules == k
        core = nodule & p.solid
        halo = nodule & ~ndi.binary_dilation(core, iterations=2)
        # The core is a part of the label; the label covers the halo too.
        assert 0 < core.sum() < 0.5 * nodule.sum() and halo.any()
        assert p.image[core].mean() > p.image[halo].mean() + 150
        # Ground glass: clearly denser than lung, clearly less dense than tissue.
        assert -750 < np.median(p.image[halo]) < -300
    for p, k in solid_only:
        assert np.array_equal(p.solid & (p.nodules == k), p.nodules == k)


def test_distractors_look_like_nodules_but_are_not_labelled(phantoms):
    nodule_hu, distractor_hu = [], []
    for p in phantoms.values():
        parts = regionprops(label(p.distractors))
        assert len(parts) >= 8  # every slice has vessel cross-sections
        assert p.lung[p.distractors].all()
        # Never labelled, and never touching a nodule.
        assert not (ndi.binary_dilation(p.distractors, iterations=2) & (p.nodules > 0)).any()
        areas = [r.area for r in parts]
        assert 5 <= np.median(areas) <= 160  # the nodules' sizes: 3-14 px across
        assert np.median([r.eccentricity for r in parts]) > 0.8  # but elongated
        distractor_hu.append(np.median(p.image[p.distractors]))
        if (p.solid).any():
            nodule_hu.append(np.median(p.image[p.solid]))
    # Brightness: both are soft tissue seen through the same partial-volume blur.
    assert abs(np.median(distractor_hu) - np.median(nodule_hu)) < 80


def test_contrast_and_noise_vary_between_slices(phantoms):
    noise = [p.image[10:60, 10:60].std() for p in phantoms.values()]
    lung_level = [
        np.median(p.image[p.lung & ~ndi.binary_dilation(p.image > -600, iterations=2)])
        for p in phantoms.values()
    ]
    assert max(noise) > 2 * min(noise)
    assert max(lung_level) - min(lung_level) > 50


def test_ct_config_switches_the_hard_parts_off():
    easy = CTConfig(empty_fraction=0.0, part_solid_fraction=0.0, distractors=(0, 0))
    for seed in range(4):
        p = ct_phantom(seed, config=easy)
        assert p.nodules.max() >= 1
        assert not p.distractors.any() and p.part_solid == ()
    assert ct_phantom(0, config=CTConfig(empty_fraction=1.0)).nodules.max() == 0
    with pytest.raises(ValueError, match="empty_fraction"):
        CTConfig(empty_fraction=1.5)
    with pytest.raises(ValueError, match="diameter_range"):
        CTConfig(diameter_range=(10.0, 5.0))


def test_ct_slice_has_bright_thin_vessels_in_the_lungs(phantoms):
    p = phantoms[2]
    bright = (p.image > -500) & p.lung & ~ndi.binary_dilation(p.nodules > 0, iterations=3)
    # Vessels: many bright lung pixels that are not nodules, in thin structures
    # (an opening with a 7x7 square removes nearly all of them).
    assert bright.sum() > 1000
    opened = ndi.binary_opening(bright, structure=np.ones((7, 7)))
    assert opened.sum() < 0.1 * bright.sum()


def test_ct_slice_other_sizes():
    config = CTConfig(empty_fraction=0.0)
    image, lung, nodules = ct_slice(5, size=256, config=config)
    assert image.shape == (256, 256)
    assert 0 < (nodules > 0).mean() < 0.002
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
