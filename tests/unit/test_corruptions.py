"""Tests of reusespec.corruptions: the CIFAR-10-C corruptions applied on the fly."""

from __future__ import annotations

import functools
import itertools

import numpy as np
import pytest
import scipy.ndimage
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st
from sklearn.datasets import load_digits, load_sample_images

from reusespec.corruptions import (
    BENCHMARK,
    CORRUPTIONS,
    DEFAULT_SUITE,
    HELD_OUT,
    RANDOM,
    RGB_ONLY,
    SEVERITIES,
    corrupt,
)

# Rounding to uint8 moves a value by at most half a level; float32 arithmetic adds a little.
HALF_LEVEL = 0.5 + 2e-3


def _resize(images: torch.Tensor, size: int) -> torch.Tensor:
    resized = F.interpolate(images.float(), size=(size, size), mode="bilinear", antialias=True)
    return resized.round().clamp(0, 255).to(torch.uint8)


@functools.cache
def _rgb_photos() -> torch.Tensor:
    """24 natural 32x32 RGB images: 128-pixel crops of scikit-learn's two sample photos."""
    crops = []
    for photo in load_sample_images().images:  # (427, 640, 3) uint8
        tensor = torch.from_numpy(photo.copy()).permute(2, 0, 1)
        for top, left in itertools.product((0, 140, 290), (0, 170, 340, 500)):
            crops.append(tensor[:, top : top + 128, left : left + 128])
    return _resize(torch.stack(crops), 32)


@functools.cache
def _gray_photos() -> torch.Tensor:
    luminance = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    return (_rgb_photos().float() * luminance).sum(1, keepdim=True).round().to(torch.uint8)


@functools.cache
def _gray_digits() -> torch.Tensor:
    """32 handwritten digits (8x8, values 0..16) scaled to 0..255 and upscaled to 32x32."""
    digits = torch.from_numpy(load_digits().images[:32]).unsqueeze(1) * (255 / 16)
    return _resize(digits, 32)


IMAGE_SETS = {"rgb_photos": _rgb_photos, "gray_photos": _gray_photos, "gray_digits": _gray_digits}


def _cases() -> list[tuple[str, str]]:
    return [
        (name, image_set)
        for name in CORRUPTIONS
        for image_set in IMAGE_SETS
        if not (name in RGB_ONLY and image_set.startswith("gray"))
    ]


def _mean_abs_diff(a: torch.Tensor, b: torch.Tensor) -> float:
    return (a.float() - b.float()).abs().mean().item()


def _mid_grey(channels: int = 3) -> torch.Tensor:
    return torch.full((8, channels, 32, 32), 128, dtype=torch.uint8)


# --- the constants ---------------------------------------------------------------------------


def test_suites_are_made_of_supported_names() -> None:
    assert SEVERITIES == (1, 2, 3, 4, 5)
    assert len(set(CORRUPTIONS)) == len(CORRUPTIONS)
    for group in (DEFAULT_SUITE, HELD_OUT, BENCHMARK, RANDOM, RGB_ONLY):
        assert set(group) <= set(CORRUPTIONS)
    assert not set(DEFAULT_SUITE) & set(HELD_OUT)
    assert not set(DEFAULT_SUITE) & set(RGB_ONLY)
    required = {"gaussian_noise", "shot_noise", "impulse_noise", "defocus_blur", "gaussian_blur"}
    required |= {"contrast", "brightness", "pixelate", "jpeg_compression"}
    assert required <= set(CORRUPTIONS)


# --- shape, dtype, determinism ---------------------------------------------------------------


@pytest.mark.parametrize(("name", "image_set"), _cases())
@pytest.mark.parametrize("severity", [1, 5])
def test_output_is_uint8_of_the_input_shape_and_input_is_untouched(
    name: str, image_set: str, severity: int
) -> None:
    images = IMAGE_SETS[image_set]()[:6]
    before = images.clone()
    out = corrupt(images, name, severity)
    assert out.dtype == torch.uint8
    assert out.shape == images.shape
    assert int(out.min()) >= 0 and int(out.max()) <= 255
    assert torch.equal(images, before)
    assert not torch.equal(out, images), "severity >= 1 should change natural images"


@pytest.mark.parametrize(("name", "image_set"), _cases())
def test_same_seed_same_output(name: str, image_set: str) -> None:
    images = IMAGE_SETS[image_set]()[:6]
    assert torch.equal(corrupt(images, name, 3, seed=7), corrupt(images, name, 3, seed=7))


@pytest.mark.parametrize("name", RANDOM)
@pytest.mark.parametrize("channels", [1, 3])
def test_random_corruptions_differ_by_seed_and_by_position(name: str, channels: int) -> None:
    images = _mid_grey(channels)
    first, second = corrupt(images, name, 3, seed=0), corrupt(images, name, 3, seed=1)
    assert not torch.equal(first, second)
    # identical clean images at different positions get different noise
    assert not torch.equal(first[0], first[1])
    assert not torch.equal(first, corrupt(images, name, 3, seed=0, start_index=100))
    # ... and the corruption's name is part of the seed, so two noise types are not correlated
    assert not torch.equal(first, corrupt(images, RANDOM[(RANDOM.index(name) + 1) % len(RANDOM)], 3, seed=0))


@pytest.mark.parametrize("name", [n for n in CORRUPTIONS if n not in RANDOM])
def test_deterministic_corruptions_ignore_seed_and_position(name: str) -> None:
    images = _rgb_photos()[:4]
    assert torch.equal(corrupt(images, name, 4, seed=0), corrupt(images, name, 4, seed=9, start_index=50))


@pytest.mark.parametrize("name", CORRUPTIONS)
@settings(max_examples=8, deadline=None)
@given(
    severity=st.sampled_from(SEVERITIES),
    seed=st.integers(0, 2**40),
    channels=st.sampled_from([1, 3]),
    cuts=st.lists(st.integers(0, 10), max_size=4),
)
def test_batches_of_any_size_give_the_same_images(
    name: str, severity: int, seed: int, channels: int, cuts: list[int]
) -> None:
    if name in RGB_ONLY:
        channels = 3
    images = (_rgb_photos() if channels == 3 else _gray_photos())[:10]
    whole = corrupt(images, name, severity, seed)
    bounds = sorted({0, len(images), *cuts})
    parts = [
        corrupt(images[start:stop], name, severity, seed, start_index=start)
        for start, stop in itertools.pairwise(bounds)
    ]
    assert torch.equal(torch.cat(parts), whole)


@pytest.mark.parametrize("name", RANDOM)
def test_indices_place_a_scattered_batch(name: str) -> None:
    images = _rgb_photos()[:12]
    whole = corrupt(images, name, 2, seed=3)
    picked = torch.tensor([9, 2, 5, 11])
    assert torch.equal(corrupt(images[picked], name, 2, seed=3, indices=picked), whole[picked])
    assert torch.equal(corrupt(images[picked], name, 2, seed=3, indices=picked.tolist()), whole[picked])


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(CORRUPTIONS),
    severity=st.sampled_from(SEVERITIES),
    count=st.integers(0, 3),
    channels=st.sampled_from([1, 3]),
    height=st.integers(1, 12),
    width=st.integers(1, 12),
    content_seed=st.integers(0, 1000),
)
def test_any_image_size_keeps_its_shape(
    name: str, severity: int, count: int, channels: int, height: int, width: int, content_seed: int
) -> None:
    generator = torch.Generator().manual_seed(content_seed)
    images = torch.randint(0, 256, (count, channels, height, width), dtype=torch.uint8, generator=generator)
    if name in RGB_ONLY and channels != 3:
        with pytest.raises(ValueError, match="3-channel"):
            corrupt(images, name, severity)
        return
    out = corrupt(images, name, severity)
    assert out.dtype == torch.uint8
    assert out.shape == images.shape


# --- severity ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("name", "image_set"), [c for c in _cases() if c[0] != "saturate"])
def test_higher_severity_moves_further_from_the_clean_image(name: str, image_set: str) -> None:
    images = IMAGE_SETS[image_set]()
    distances = [_mean_abs_diff(corrupt(images, name, severity, seed=0), images) for severity in SEVERITIES]
    assert all(a < b for a, b in itertools.pairwise(distances)), distances


def test_saturate_desaturates_at_low_severities_and_saturates_at_high_ones() -> None:
    # CIFAR-10-C's saturate is not monotone in distance: severities 1-2 scale HSV saturation
    # by 0.3 and 0.1, severities 3-5 raise it. Measure the saturation itself.
    def mean_saturation(images: torch.Tensor) -> float:
        rgb = images.float()
        value, low = rgb.amax(1), rgb.amin(1)
        return torch.where(value > 0, (value - low) / value.clamp(min=1), 0.0).mean().item()

    images = _rgb_photos()
    clean = mean_saturation(images)
    s1, s2, s3, s4, s5 = (mean_saturation(corrupt(images, "saturate", s)) for s in SEVERITIES)
    assert s2 < s1 < clean < s3 < s4 < s5


# --- each corruption does what its definition says -------------------------------------------


# gaussian: sigma 0.10 on [0, 1]; speckle: x * sigma with x = 128/255 and sigma 0.2
@pytest.mark.parametrize(("name", "sigma_levels"), [("gaussian_noise", 25.5), ("speckle_noise", 0.2 * 128)])
@pytest.mark.parametrize("channels", [1, 3])
def test_additive_noise_has_the_severity_5_spread(name: str, sigma_levels: float, channels: int) -> None:
    images = _mid_grey(channels)
    noise = corrupt(images, name, 5).float() - images.float()
    assert abs(noise.mean().item()) < 0.05 * sigma_levels
    assert noise.std().item() == pytest.approx(sigma_levels, rel=0.05)


def test_shot_noise_is_poisson_with_50_photons_at_severity_5() -> None:
    images = _mid_grey()
    rate = 128 / 255 * 50
    noise = corrupt(images, "shot_noise", 5).float() - images.float()
    assert abs(noise.mean().item()) < 1.0
    assert noise.std().item() == pytest.approx(np.sqrt(rate) / 50 * 255, rel=0.05)


def test_impulse_noise_sets_7_percent_of_values_to_black_or_white_at_severity_5() -> None:
    images = _mid_grey()
    out = corrupt(images, "impulse_noise", 5)
    black, white = (out == 0).float().mean().item(), (out == 255).float().mean().item()
    assert black == pytest.approx(0.035, abs=0.006)
    assert white == pytest.approx(0.035, abs=0.006)
    assert bool(((out == 0) | (out == 255) | (out == 128)).all())


@pytest.mark.parametrize("image_set", list(IMAGE_SETS))
@pytest.mark.parametrize(("severity", "factor"), [(1, 0.75), (5, 0.15)])
def test_contrast_pulls_each_channel_towards_its_mean(image_set: str, severity: int, factor: float) -> None:
    images = IMAGE_SETS[image_set]().float()
    means = images.mean(dim=(2, 3), keepdim=True)
    expected = (images - means) * factor + means
    out = corrupt(images.to(torch.uint8), "contrast", severity)
    assert (out.float() - expected).abs().max() <= HALF_LEVEL


@pytest.mark.parametrize(("severity", "shift"), [(1, 0.05), (5, 0.3)])
def test_brightness_adds_to_grey_intensity(severity: int, shift: float) -> None:
    images = _gray_photos()
    expected = (images.float() + shift * 255).clamp(max=255)
    assert (corrupt(images, "brightness", severity).float() - expected).abs().max() <= HALF_LEVEL


@pytest.mark.parametrize(("severity", "shift"), [(1, 0.05), (5, 0.3)])
def test_brightness_adds_to_the_hsv_value_keeping_hue_and_saturation(severity: int, shift: float) -> None:
    # With hue and saturation fixed, raising the value V = max(r, g, b) to V' scales every channel by V'/V.
    images = _rgb_photos().float()
    value = images.amax(1, keepdim=True)
    new_value = (value + shift * 255).clamp(max=255)
    expected = torch.where(value > 0, images * new_value / value.clamp(min=1), new_value)
    out = corrupt(images.to(torch.uint8), "brightness", severity)
    assert (out.float() - expected).abs().max() <= HALF_LEVEL


DEFOCUS_RADIUS_ALIAS = [(0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1, 0.2), (1.5, 0.1)]


@pytest.mark.parametrize(
    ("severity", "radius", "alias_blur"), [(s, *p) for s, p in enumerate(DEFOCUS_RADIUS_ALIAS, 1)]
)
def test_defocus_blur_convolves_with_an_antialiased_disk(
    severity: int, radius: float, alias_blur: float
) -> None:
    images = _rgb_photos()[:6]
    offsets = torch.arange(-2, 3, dtype=torch.float64)
    disk = ((offsets[:, None] ** 2 + offsets[None, :] ** 2) <= radius**2).double()
    taps = torch.exp(-(torch.arange(-1, 2, dtype=torch.float64) ** 2) / (2 * alias_blur**2))
    gauss = torch.outer(taps, taps) / taps.sum() ** 2
    kernel = F.conv2d((disk / disk.sum())[None, None], gauss[None, None], padding=1)
    flat = images.double().reshape(-1, 1, 32, 32)
    expected = F.conv2d(F.pad(flat, (2, 2, 2, 2), mode="reflect"), kernel).reshape(images.shape)
    assert (corrupt(images, "defocus_blur", severity).double() - expected).abs().max() <= HALF_LEVEL


@pytest.mark.parametrize(("severity", "sigma"), [(1, 0.4), (5, 1.0)])
def test_gaussian_blur_matches_a_separable_gaussian_with_edge_padding(severity: int, sigma: float) -> None:
    images = _gray_digits()
    radius = int(4 * sigma + 0.5)  # skimage/scipy truncate the kernel at 4 sigma
    taps = torch.exp(-(torch.arange(-radius, radius + 1, dtype=torch.float64) ** 2) / (2 * sigma**2))
    taps /= taps.sum()
    padded = F.pad(images.double(), (radius,) * 4, mode="replicate")
    expected = F.conv2d(F.conv2d(padded, taps.view(1, 1, -1, 1)), taps.view(1, 1, 1, -1))
    assert (corrupt(images, "gaussian_blur", severity).double() - expected).abs().max() <= HALF_LEVEL


@pytest.mark.parametrize(("severity", "end"), [(1, 1.06), (5, 1.26)])
def test_zoom_blur_matches_make_cifar_c_scipy_zoom(severity: int, end: float) -> None:
    images = _rgb_photos()[:3]

    def clipped_zoom(image: np.ndarray, factor: float) -> np.ndarray:  # make_cifar_c.py, HWC
        size = image.shape[0]
        crop = int(np.ceil(size / factor))
        top = (size - crop) // 2
        zoomed = scipy.ndimage.zoom(image[top : top + crop, top : top + crop], (factor, factor, 1), order=1)
        trim = (zoomed.shape[0] - size) // 2
        return zoomed[trim : trim + size, trim : trim + size]

    factors = np.arange(1, end, 0.01)
    expected = []
    for image in images.permute(0, 2, 3, 1).numpy():
        unit = (image / 255).astype(np.float32)
        total = unit + sum(clipped_zoom(unit, factor) for factor in factors)
        expected.append(np.clip(total / (len(factors) + 1), 0, 1) * 255)
    reference = torch.from_numpy(np.stack(expected)).permute(0, 3, 1, 2)
    assert (corrupt(images, "zoom_blur", severity).float() - reference).abs().max() <= HALF_LEVEL


@pytest.mark.parametrize("name", ["defocus_blur", "gaussian_blur", "zoom_blur", "contrast", "pixelate"])
def test_spatial_corruptions_leave_a_flat_image_flat(name: str) -> None:
    images = torch.full((2, 3, 20, 24), 77, dtype=torch.uint8)
    assert torch.equal(corrupt(images, name, 5), images)


def test_jpeg_compression_keeps_a_flat_image_nearly_flat() -> None:
    images = torch.full((2, 3, 20, 24), 77, dtype=torch.uint8)
    assert _mean_abs_diff(corrupt(images, "jpeg_compression", 5), images) <= 1.0


def test_pixelate_leaves_blocks_of_equal_pixels() -> None:
    # An alternating stripe pattern has no two equal neighbours; pixelating merges some.
    images = torch.zeros((1, 1, 32, 32), dtype=torch.uint8)
    images[..., ::2] = 255
    out = corrupt(images, "pixelate", 5)
    equal_neighbours = (out[..., 1:] == out[..., :-1]).float().mean().item()
    assert equal_neighbours > 0.1


# --- errors -----------------------------------------------------------------------------------


def test_unknown_name_lists_the_valid_ones() -> None:
    with pytest.raises(ValueError, match="unknown corruption 'fogg'") as info:
        corrupt(_gray_digits(), "fogg", 1)
    for name in CORRUPTIONS:
        assert name in str(info.value)


@pytest.mark.parametrize("severity", [0, 6, -1, True, 2.0])
def test_severity_outside_1_to_5_is_refused(severity: object) -> None:
    with pytest.raises(ValueError, match="severity"):
        corrupt(_gray_digits(), "contrast", severity)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("images", "detail"),
    [
        (torch.zeros((2, 3, 8, 8), dtype=torch.float32), "dtype"),
        (torch.zeros((3, 8, 8), dtype=torch.uint8), "shape"),
        (torch.zeros((2, 2, 8, 8), dtype=torch.uint8), "shape"),
        (torch.zeros((2, 8, 8, 3), dtype=torch.uint8), "shape"),
        (np.zeros((2, 3, 8, 8), dtype=np.uint8), "ndarray"),
    ],
)
def test_wrong_images_say_what_is_expected(images: object, detail: str) -> None:
    with pytest.raises(ValueError, match=r"uint8 tensor of shape \(N, C, H, W\)") as info:
        corrupt(images, "contrast", 1)  # type: ignore[arg-type]
    assert detail in str(info.value)


def test_saturate_refuses_grey_images() -> None:
    with pytest.raises(ValueError, match="3-channel"):
        corrupt(_gray_digits(), "saturate", 1)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"seed": -1}, "seed"),
        ({"start_index": -3}, "start_index"),
        ({"indices": [0, 1]}, "indices"),
        ({"indices": [0.5, 1, 2, 3]}, "indices"),
        ({"indices": [0, -1, 2, 3]}, "non-negative"),
        ({"indices": [0, 1, 2, 3], "start_index": 4}, "not both"),
    ],
)
def test_bad_seed_or_positions_are_refused(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        corrupt(_mid_grey()[:4], "gaussian_noise", 1, **kwargs)  # type: ignore[arg-type]
