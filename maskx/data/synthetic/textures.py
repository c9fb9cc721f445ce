"""Procedural textures of the synthetic benchmark (RGB floats in [0, 1], arrays [3, H, W]).

Object surfaces and background patches draw from one set of pattern kinds with the same
amplitudes and random colours, so a pattern never marks an object as such: each object
family has its own kind (its appearance trait, see ``categories.FAMILY_PATTERNS``), and
every kind also covers patches of background.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

# Periodic patterns, values in [0, 1]. Orientation ranges are flip-symmetric (horizontal
# flips are the usual training augmentation), so a kind survives augmentation.
PATTERNS = ("spots", "checker", "horizontal_stripes", "vertical_stripes", "rings",
            "diagonal_stripes")
PATTERN_PERIOD = (5.0, 14.0)  # pixels
# RGB distance between a pattern's two colours: visible at a glance without hiding the
# colour of the surface.
PATTERN_AMPLITUDE = (0.15, 0.35)
_ORIENTATION_JITTER = np.deg2rad(15.0)
# RGB distances of a background's colours from its first one: a scene keeps to a palette,
# so edges between patches are of the order of those around objects, not far stronger.
_BACKGROUND_SPREAD = (0.1, 0.6)


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int,
                 channels: int = 1) -> np.ndarray:
    """Value noise [channels, H, W]: a random ``(cells+1)^2`` lattice, bilinearly upsampled."""
    lattice = rng.random((channels, cells + 1, cells + 1), dtype=np.float32)
    # PIL's float-image resize does the interpolation in C, much faster than numpy here.
    return np.stack([Image.fromarray(plane).resize((width, height), Image.BILINEAR)
                     for plane in lattice])


def _random_direction(rng: np.random.Generator, count: int = 1) -> np.ndarray:
    """Unit vectors in RGB space [count, 3]."""
    directions = rng.standard_normal((count, 3)).astype(np.float32)
    return directions / np.linalg.norm(directions, axis=1, keepdims=True)


def colour_at_distance(rng: np.random.Generator, reference: np.ndarray,
                       distance: float) -> np.ndarray:
    """A random RGB colour [3] in the unit cube about ``distance`` away from ``reference``.

    Of a few random directions, the one whose step, clipped to the cube, comes closest to
    the distance asked: next to a face of the cube most directions lose length.
    """
    reference = np.asarray(reference, dtype=np.float32).reshape(1, 3)
    candidates = np.clip(reference + np.float32(distance) * _random_direction(rng, 8), 0, 1)
    shortfall = np.abs(np.linalg.norm(candidates - reference, axis=1) - distance)
    return candidates[np.argmin(shortfall)]


def _pattern_angle(kind: str, rng: np.random.Generator) -> float:
    """Direction of a pattern's wave vector, in radians, from the x axis (y down)."""
    jitter = rng.uniform(-_ORIENTATION_JITTER, _ORIENTATION_JITTER)
    if kind == "horizontal_stripes":
        return np.pi / 2 + jitter
    if kind == "vertical_stripes":
        return jitter
    if kind == "diagonal_stripes":
        return np.pi / 4 + np.pi / 2 * rng.integers(2) + jitter
    return rng.uniform(0.0, np.pi)


def pattern(kind: str, rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """One pattern [H, W] in [0, 1] of the given kind, random period, angle and phase."""
    period = np.float32(rng.uniform(*PATTERN_PERIOD))
    if kind == "rings":
        # Centred near the middle of the area: on an object, rings of its own.
        cx, cy = width * rng.uniform(0.25, 0.75), height * rng.uniform(0.25, 0.75)
        dx = (np.arange(width, dtype=np.float32) - np.float32(cx))[None, :]
        dy = (np.arange(height, dtype=np.float32) - np.float32(cy))[:, None]
        radius = np.sqrt(dx * dx + dy * dy) / period
        return 0.5 + 0.5 * np.sin(np.float32(2 * np.pi) * radius)
    # Coordinates in periods along and across the wave vector, from a random origin so
    # that the phase is random.
    angle = _pattern_angle(kind, rng)
    cos, sin = np.float32(np.cos(angle) / period), np.float32(np.sin(angle) / period)
    x = np.arange(width, dtype=np.float32)[None, :] + np.float32(rng.uniform(0, period))
    y = np.arange(height, dtype=np.float32)[:, None] + np.float32(rng.uniform(0, period))
    along = x * cos + y * sin
    if kind.endswith("stripes"):
        return 0.5 + 0.5 * np.sin(np.float32(2 * np.pi) * along)
    across = y * cos - x * sin
    if kind == "checker":
        # Squares with soft edges: a product of gratings, saturated.
        product = np.sin(np.float32(np.pi) * along) * np.sin(np.float32(np.pi) * across)
        return np.clip(0.5 + 2.0 * product, 0.0, 1.0)
    if kind == "spots":
        # Soft dots of radius 0.3 period on a square lattice.
        du, dv = along - np.round(along), across - np.round(across)
        return np.clip(0.5 + 6.0 * (0.3 - np.sqrt(du * du + dv * dv)), 0.0, 1.0)
    raise ValueError(f"unknown pattern kind {kind!r}; kinds are {PATTERNS}")


def surface(rng: np.random.Generator, kind: str | None, height: int, width: int,
            colour: np.ndarray, amplitude: tuple[float, float] = PATTERN_AMPLITUDE) -> np.ndarray:
    """A surface [3, H, W] of mean RGB ``colour``, patterned by ``kind`` (None: plain)."""
    colour = np.asarray(colour, dtype=np.float32).reshape(3, 1, 1)
    if kind is None:
        return np.broadcast_to(colour, (3, height, width))
    values = pattern(kind, rng, height, width)
    # The pattern moves the colour along a random RGB direction around its mean, so that
    # ``colour`` stays the surface's mean colour whatever the kind.
    delta = rng.uniform(*amplitude) * _random_direction(rng)[0].reshape(3, 1, 1)
    return colour + (values - values.mean())[None] * delta


def background(rng: np.random.Generator, height: int, width: int, patterned: bool = True) -> np.ndarray:
    """A cluttered background [3, H, W]: blended colours under patterned patches.

    The patches are blobs in colours of the scene's palette, each with one of the objects'
    pattern kinds or none, so that background, too, has patterned regions with sharp edges.
    """
    colour_a = rng.random(3, dtype=np.float32)
    colour_b = colour_at_distance(rng, colour_a, rng.uniform(*_BACKGROUND_SPREAD))
    blend = smooth_noise(rng, height, width, int(rng.integers(2, 6)))
    image = colour_a.reshape(3, 1, 1) + (colour_b - colour_a).reshape(3, 1, 1) * blend
    kinds = (*PATTERNS, None) if patterned else (None,)
    for _ in range(int(rng.integers(2, 6))):
        region = smooth_noise(rng, height, width, int(rng.integers(3, 7)))[0]
        region = region > np.float32(rng.uniform(0.55, 0.75))
        kind = kinds[rng.integers(len(kinds))]
        colour = colour_at_distance(rng, colour_a, rng.uniform(*_BACKGROUND_SPREAD))
        np.copyto(image, surface(rng, kind, height, width, colour), where=region)
    return image


def grime(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """Colour blotches and pixel noise [3, H, W] around 0, laid over the finished scene.

    Objects and background share it, so it blurs the line between them rather than
    marking it.
    """
    blotches = 0.2 * (smooth_noise(rng, height, width, int(rng.integers(10, 30)), 3) - 0.5)
    return blotches + np.float32(0.02) * rng.standard_normal((3, height, width),
                                                             dtype=np.float32)
