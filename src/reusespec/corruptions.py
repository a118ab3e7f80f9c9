"""Common image corruptions for domain-shift specs, after CIFAR-10-C.

Hendrycks and Dietterich (ICLR 2019) built CIFAR-10-C with ``make_cifar_c.py`` from
github.com/hendrycks/robustness. This module re-implements 12 of its 19 corruptions with
the CIFAR severity parameters, so that any image task can be corrupted on the fly::

    corrupted = corrupt(images, "gaussian_noise", severity=3, seed=0, start_index=first_position)

Departures from the original, on purpose:

* Results are rounded to the nearest uint8 level. The original cast with ``np.uint8``,
  which truncates and so darkens every image by half a level on average.
* Random draws come from one generator per image, seeded from ``(seed, name, position)``
  where position is the image's index in its split. Corrupting a split in batches of any
  size therefore gives the same images as corrupting it at once (pass ``start_index`` or
  ``indices``). The draws do not depend on the severity, so a higher severity scales the
  same noise instead of drawing new noise (shot noise excepted: its draw is the noise).
* Images of any size and with 1 channel work (the original assumed 32x32 RGB);
  brightness on one channel adds to the intensity, the HSV value of a grey pixel.

Not implemented: motion_blur and snow (they need ImageMagick), frost (picture files),
glass_blur (a pixel-by-pixel Python loop), fog, elastic_transform and spatter.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import scipy.ndimage
import torch
import torch.nn.functional as F
from PIL import Image

__all__ = [
    "BENCHMARK",
    "CORRUPTIONS",
    "DEFAULT_SUITE",
    "HELD_OUT",
    "RANDOM",
    "RGB_ONLY",
    "SEVERITIES",
    "corrupt",
]

SEVERITIES: tuple[int, ...] = (1, 2, 3, 4, 5)

# Parameters per severity 1..5, CIFAR-10 values from make_cifar_c.py.
_GAUSSIAN_SIGMA = (0.04, 0.06, 0.08, 0.09, 0.10)
_SHOT_PHOTONS = (500, 250, 100, 75, 50)
_IMPULSE_AMOUNT = (0.01, 0.02, 0.03, 0.05, 0.07)
_SPECKLE_SIGMA = (0.06, 0.1, 0.12, 0.16, 0.2)
_DEFOCUS_RADIUS_ALIAS = ((0.3, 0.4), (0.4, 0.5), (0.5, 0.6), (1.0, 0.2), (1.5, 0.1))
_GAUSSIAN_BLUR_SIGMA = (0.4, 0.6, 0.7, 0.8, 1.0)
_ZOOM_END = (1.06, 1.11, 1.16, 1.21, 1.26)  # zoom factors np.arange(1, end, 0.01)
_CONTRAST_FACTOR = (0.75, 0.5, 0.4, 0.3, 0.15)
_BRIGHTNESS_SHIFT = (0.05, 0.1, 0.15, 0.2, 0.3)
_SATURATE_SCALE_SHIFT = ((0.3, 0.0), (0.1, 0.0), (1.5, 0.0), (2.0, 0.1), (2.5, 0.2))
_PIXELATE_SCALE = (0.95, 0.9, 0.85, 0.75, 0.65)
_JPEG_QUALITY = (80, 65, 58, 50, 40)


@dataclass(frozen=True)
class _Batch:
    """A batch to corrupt: the clean images and where they sit in their split."""

    images: torch.Tensor  # uint8 (N, C, H, W) on the CPU
    severity: int
    name: str
    seed: int
    positions: np.ndarray  # int64 (N,), each image's index in its split

    def unit(self) -> torch.Tensor:
        """The images as float32 in [0, 1]."""
        return self.images.to(torch.float32) / 255.0

    def per_image(self, draw: Callable[[torch.Generator, int], torch.Tensor]) -> torch.Tensor:
        """Stack ``draw(generator, i)`` over the images, each with its own seeded generator."""
        name_key = zlib.crc32(self.name.encode())  # stable across runs, unlike hash()
        draws = []
        for i, position in enumerate(self.positions.tolist()):
            sequence = np.random.SeedSequence(self.seed, spawn_key=(name_key, position))
            image_seed = int(sequence.generate_state(1, dtype=np.uint64)[0])
            draws.append(draw(torch.Generator().manual_seed(image_seed), i))
        return torch.stack(draws)


# Each corruption maps a batch to float images in [0, 1] (values outside are clipped later).


def _gaussian_noise(batch: _Batch) -> torch.Tensor:
    sigma = _GAUSSIAN_SIGMA[batch.severity - 1]
    shape = batch.images.shape[1:]
    noise = batch.per_image(lambda g, _: torch.randn(shape, generator=g))
    return batch.unit() + sigma * noise


def _shot_noise(batch: _Batch) -> torch.Tensor:
    photons = _SHOT_PHOTONS[batch.severity - 1]
    rates = batch.unit() * photons
    return batch.per_image(lambda g, i: torch.poisson(rates[i], generator=g)) / photons


def _impulse_noise(batch: _Batch) -> torch.Tensor:
    # Salt-and-pepper as skimage.util.random_noise(mode="s&p"): each value flips with
    # probability `amount`, to white or black with equal odds.
    amount = _IMPULSE_AMOUNT[batch.severity - 1]
    shape = (2, *batch.images.shape[1:])
    uniforms = batch.per_image(lambda g, _: torch.rand(shape, generator=g))
    flipped, salt = uniforms[:, 0] < amount, uniforms[:, 1] < 0.5
    x = batch.unit()
    return torch.where(flipped, salt.to(x.dtype), x)


def _speckle_noise(batch: _Batch) -> torch.Tensor:
    sigma = _SPECKLE_SIGMA[batch.severity - 1]
    shape = batch.images.shape[1:]
    noise = batch.per_image(lambda g, _: torch.randn(shape, generator=g))
    x = batch.unit()
    return x + x * sigma * noise


def _defocus_kernel(radius: float, alias_blur: float) -> np.ndarray:
    """The anti-aliased disk of make_cifar_c.py, trimmed to its non-zero support."""
    grid = np.arange(-8, 9)
    xs, ys = np.meshgrid(grid, grid)
    disk = (xs**2 + ys**2 <= radius**2).astype(np.float64)
    disk /= disk.sum()
    # cv2.GaussianBlur(disk, ksize=(3, 3), sigmaX=alias_blur): a sampled, normalised 3-tap Gaussian.
    taps = np.exp(-(np.arange(-1, 2) ** 2) / (2 * alias_blur**2))
    taps /= taps.sum()
    blurred = scipy.ndimage.correlate1d(scipy.ndimage.correlate1d(disk, taps, axis=0), taps, axis=1)
    rows, cols = np.nonzero(blurred)
    return blurred[rows.min() : rows.max() + 1, cols.min() : cols.max() + 1]


def _defocus_blur(batch: _Batch) -> torch.Tensor:
    kernel = _defocus_kernel(*_DEFOCUS_RADIUS_ALIAS[batch.severity - 1]).astype(np.float32)
    # mode="mirror" is cv2.filter2D's default border (BORDER_REFLECT_101).
    blurred = scipy.ndimage.correlate(batch.unit().numpy(), kernel[None, None], mode="mirror")
    return torch.from_numpy(blurred)


def _gaussian_blur(batch: _Batch) -> torch.Tensor:
    sigma = _GAUSSIAN_BLUR_SIGMA[batch.severity - 1]
    # skimage.filters.gaussian's defaults: mode="nearest", truncate=4; no blur across channels.
    blurred = scipy.ndimage.gaussian_filter(batch.unit().numpy(), sigma=(0, 0, sigma, sigma), mode="nearest")
    return torch.from_numpy(blurred)


def _clipped_zoom(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Zoom into the centre by `factor`, keeping the size (make_cifar_c.py's clipped_zoom)."""
    height, width = x.shape[-2:]
    crop_h, crop_w = int(np.ceil(height / factor)), int(np.ceil(width / factor))
    top, left = (height - crop_h) // 2, (width - crop_w) // 2
    crop = x[..., top : top + crop_h, left : left + crop_w]
    # scipy.ndimage.zoom(order=1) rounds the output size and maps corners onto corners,
    # which is bilinear interpolation with align_corners=True.
    size = (round(crop_h * factor), round(crop_w * factor))
    zoomed = F.interpolate(crop, size=size, mode="bilinear", align_corners=True)
    trim_h, trim_w = (size[0] - height) // 2, (size[1] - width) // 2
    return zoomed[..., trim_h : trim_h + height, trim_w : trim_w + width]


def _zoom_blur(batch: _Batch) -> torch.Tensor:
    factors = np.arange(1, _ZOOM_END[batch.severity - 1], 0.01)  # same float steps as the original
    x = batch.unit()
    total = x.clone()
    for factor in factors.tolist():
        total += _clipped_zoom(x, factor)
    return total / (len(factors) + 1)


def _contrast(batch: _Batch) -> torch.Tensor:
    factor = _CONTRAST_FACTOR[batch.severity - 1]
    x = batch.unit()
    means = x.mean(dim=(2, 3), keepdim=True)  # per image and channel, as the original
    return (x - means) * factor + means


def _rgb_to_hsv(rgb: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """skimage.color.rgb2hsv for (N, 3, H, W) in [0, 1], ties resolved as skimage does."""
    red, green, blue = rgb.unbind(1)
    value = rgb.amax(dim=1)
    delta = value - rgb.amin(dim=1)
    chromatic = delta > 0
    safe_delta = torch.where(chromatic, delta, torch.ones_like(delta))
    saturation = torch.where(chromatic, delta / torch.where(chromatic, value, torch.ones_like(value)), 0.0)
    hue = torch.where(
        blue == value,
        4 + (red - green) / safe_delta,
        torch.where(green == value, 2 + (blue - red) / safe_delta, (green - blue) / safe_delta),
    )
    hue = torch.where(chromatic, torch.remainder(hue / 6, 1.0), 0.0)
    return hue, saturation, value


def _hsv_to_rgb(hue: torch.Tensor, saturation: torch.Tensor, value: torch.Tensor) -> torch.Tensor:
    """skimage.color.hsv2rgb, the inverse of `_rgb_to_hsv`, as (N, 3, H, W)."""
    sector = torch.floor(hue * 6)
    fraction = hue * 6 - sector
    p = value * (1 - saturation)
    q = value * (1 - fraction * saturation)
    t = value * (1 - (1 - fraction) * saturation)
    index = torch.remainder(sector.to(torch.int64), 6).unsqueeze(0)
    channels = []
    for order in ((value, q, p, p, t, value), (t, value, value, q, p, p), (p, p, t, value, value, q)):
        channels.append(torch.gather(torch.stack(order), 0, index).squeeze(0))
    return torch.stack(channels, dim=1)


def _brightness(batch: _Batch) -> torch.Tensor:
    shift = _BRIGHTNESS_SHIFT[batch.severity - 1]
    x = batch.unit()
    if x.shape[1] == 1:  # a grey pixel's HSV value is its intensity
        return (x + shift).clamp(0, 1)
    hue, saturation, value = _rgb_to_hsv(x)
    return _hsv_to_rgb(hue, saturation, (value + shift).clamp(0, 1))


def _saturate(batch: _Batch) -> torch.Tensor:
    scale, shift = _SATURATE_SCALE_SHIFT[batch.severity - 1]
    hue, saturation, value = _rgb_to_hsv(batch.unit())
    # Grey pixels have hue 0 (red), so the shift at severities 4-5 tints them red, as in CIFAR-10-C.
    return _hsv_to_rgb(hue, (saturation * scale + shift).clamp(0, 1), value)


def _per_pil_image(images: torch.Tensor, transform: Callable[[Image.Image], Image.Image]) -> torch.Tensor:
    """Apply a PIL transform to each uint8 image; returns float32 in [0, 1]."""
    out = []
    for image in images.permute(0, 2, 3, 1).numpy():
        pil = Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image)
        array = np.asarray(transform(pil), dtype=np.uint8).reshape(image.shape)
        out.append(torch.from_numpy(array.copy()).permute(2, 0, 1))
    return torch.stack(out).to(torch.float32) / 255.0


def _pixelate(batch: _Batch) -> torch.Tensor:
    scale = _PIXELATE_SCALE[batch.severity - 1]

    def box_down_up(image: Image.Image) -> Image.Image:
        small = (max(1, int(image.width * scale)), max(1, int(image.height * scale)))
        return image.resize(small, Image.Resampling.BOX).resize(image.size, Image.Resampling.BOX)

    return _per_pil_image(batch.images, box_down_up)


def _jpeg_compression(batch: _Batch) -> torch.Tensor:
    quality = _JPEG_QUALITY[batch.severity - 1]

    def round_trip(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=quality)
        return Image.open(buffer)

    return _per_pil_image(batch.images, round_trip)


_IMPLEMENTATIONS: dict[str, Callable[[_Batch], torch.Tensor]] = {
    "gaussian_noise": _gaussian_noise,
    "shot_noise": _shot_noise,
    "impulse_noise": _impulse_noise,
    "speckle_noise": _speckle_noise,
    "defocus_blur": _defocus_blur,
    "gaussian_blur": _gaussian_blur,
    "zoom_blur": _zoom_blur,
    "brightness": _brightness,
    "contrast": _contrast,
    "saturate": _saturate,
    "pixelate": _pixelate,
    "jpeg_compression": _jpeg_compression,
}

CORRUPTIONS: tuple[str, ...] = tuple(_IMPLEMENTATIONS)
"""Every corruption name `corrupt` accepts."""

RANDOM: tuple[str, ...] = ("gaussian_noise", "shot_noise", "impulse_noise", "speckle_noise")
"""Corruptions that draw random numbers (the others ignore the seed)."""

HELD_OUT: tuple[str, ...] = ("speckle_noise", "gaussian_blur", "saturate")
"""CIFAR-10-C's held-out corruptions (meant for validation, not for reporting mCE)."""

BENCHMARK: tuple[str, ...] = tuple(name for name in CORRUPTIONS if name not in HELD_OUT)
"""The implemented members of CIFAR-10-C's 15 benchmark corruptions."""

RGB_ONLY: tuple[str, ...] = ("saturate",)
"""Corruptions that need 3-channel images."""

DEFAULT_SUITE: tuple[str, ...] = tuple(name for name in BENCHMARK if name not in RGB_ONLY)
"""Corruptions a domain-shift spec uses unless told otherwise: benchmark ones that work on any image."""


def _is_int(value: object) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _positions(
    count: int, start_index: int, indices: Sequence[int] | np.ndarray | torch.Tensor | None
) -> np.ndarray:
    if not _is_int(start_index) or start_index < 0:
        raise ValueError(f"start_index must be a non-negative int, got {start_index!r}")
    if indices is None:
        return np.arange(start_index, start_index + count, dtype=np.int64)
    if start_index != 0:
        raise ValueError("pass either start_index or indices, not both: indices already place every image")
    if isinstance(indices, torch.Tensor):
        indices = indices.detach().cpu().numpy()
    positions = np.asarray(indices)
    if positions.shape != (count,) or not (count == 0 or np.issubdtype(positions.dtype, np.integer)):
        raise ValueError(
            f"indices must be {count} integers, one split position per image; got shape {positions.shape} "
            f"of dtype {positions.dtype}"
        )
    if count and positions.min() < 0:
        raise ValueError("indices must be non-negative split positions")
    return positions.astype(np.int64)


def _check_images(images: torch.Tensor) -> None:
    expected = "a uint8 tensor of shape (N, C, H, W) with C = 1 or 3"
    if not isinstance(images, torch.Tensor):
        raise ValueError(f"images must be {expected}, got {type(images).__name__}")
    if images.dtype != torch.uint8:
        raise ValueError(
            f"images must be {expected}, got dtype {images.dtype}; convert with (x * 255).round().byte()"
        )
    if images.ndim != 4 or images.shape[1] not in (1, 3):
        raise ValueError(f"images must be {expected}, got shape {tuple(images.shape)}")


def corrupt(
    images: torch.Tensor,
    name: str,
    severity: int,
    seed: int = 0,
    *,
    start_index: int = 0,
    indices: Sequence[int] | np.ndarray | torch.Tensor | None = None,
) -> torch.Tensor:
    """Corrupt a batch of uint8 images ``(N, C, H, W)`` (C = 1 or 3) with a CIFAR-10-C corruption.

    ``severity`` is 1 (mild) to 5 (strong). The random corruptions (see ``RANDOM``) draw
    from one generator per image, seeded from ``(seed, name, position)``; an image's
    position is ``start_index + i`` or, if given, ``indices[i]``. So the output depends
    only on the images, the seed and their positions, never on how a split was batched.
    Returns a new uint8 tensor of the input's shape, on the input's device (the work is
    done on the CPU).
    """
    if name not in _IMPLEMENTATIONS:
        raise ValueError(f"unknown corruption {name!r}; valid names: {', '.join(CORRUPTIONS)}")
    if not _is_int(severity) or severity not in SEVERITIES:
        raise ValueError(f"severity must be an int from 1 to 5, got {severity!r}")
    if not _is_int(seed) or seed < 0:
        raise ValueError(f"seed must be a non-negative int, got {seed!r}")
    _check_images(images)
    if name in RGB_ONLY and images.shape[1] != 3:
        raise ValueError(f"{name} changes colour and needs 3-channel images, got {images.shape[1]} channel")
    positions = _positions(images.shape[0], start_index, indices)
    if images.shape[0] == 0:
        return images.clone()

    batch = _Batch(images.detach().cpu().contiguous(), int(severity), name, int(seed), positions)
    corrupted = _IMPLEMENTATIONS[name](batch)
    as_uint8 = (corrupted.clamp(0, 1) * 255).round().to(torch.uint8)
    return as_uint8.to(images.device)
