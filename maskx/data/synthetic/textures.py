"""Procedural textures for synthetic backgrounds and object surfaces (RGB floats in [0, 1]).

Textures are random per image and per object instance, never per class, so the class of
an object shows only in its shape.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def smooth_noise(rng: np.random.Generator, height: int, width: int, cells: int,
                 channels: int = 1) -> np.ndarray:
    """Value noise [channels, H, W]: a random ``(cells+1)^2`` lattice, bilinearly upsampled."""
    lattice = rng.random((channels, cells + 1, cells + 1), dtype=np.float32)
    # PIL's float-image resize does the interpolation in C, much faster than numpy here.
    return np.stack([Image.fromarray(plane).resize((width, height), Image.BILINEAR)
                     for plane in lattice])


def _stripes(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A sinusoidal grating [1, H, W] of random orientation, period and phase, in [0, 1]."""
    angle = rng.uniform(0.0, np.pi)
    period = rng.uniform(4.0, 24.0)
    step = 2 * np.pi / period
    along_x = np.arange(width, dtype=np.float32) * np.float32(step * np.cos(angle))
    along_y = np.arange(height, dtype=np.float32) * np.float32(step * np.sin(angle))
    phase = along_y[:, None] + along_x[None, :] + np.float32(rng.uniform(0.0, 2 * np.pi))
    return (0.5 + 0.5 * np.sin(phase))[None]


def _colour(rng: np.random.Generator) -> np.ndarray:
    return rng.random((3, 1, 1), dtype=np.float32)


def background(rng: np.random.Generator, height: int, width: int) -> np.ndarray:
    """A cluttered background [3, H, W]: two blended colours, blotches, optional stripes."""
    colour_a, colour_b = _colour(rng), _colour(rng)
    blend = smooth_noise(rng, height, width, int(rng.integers(2, 6)))
    image = colour_a + (colour_b - colour_a) * blend
    image += 0.25 * (smooth_noise(rng, height, width, int(rng.integers(10, 30)), 3) - 0.5)
    if rng.random() < 0.5:
        image += np.float32(rng.uniform(0.05, 0.2)) * (_stripes(rng, height, width) - 0.5)
    return image


def surface(rng: np.random.Generator, height: int, width: int, colour: np.ndarray) -> np.ndarray:
    """An object's surface [3, H, W]: its RGB ``colour`` shaded by one of a few patterns."""
    colour = np.asarray(colour, dtype=np.float32).reshape(3, 1, 1)
    kind = rng.integers(3)
    if kind == 0:
        # Plain with a gentle lighting gradient.
        strength = np.float32(rng.uniform(-0.3, 0.3))
        gradient = np.linspace(-0.5, 0.5, width, dtype=np.float32) * strength
        return np.broadcast_to(colour + gradient, (3, height, width))
    if kind == 1:
        mix = np.float32(rng.uniform(0.2, 0.5)) * _stripes(rng, height, width)
        return colour + (_colour(rng) - colour) * mix
    cells = int(rng.integers(2, 8))
    return colour + 0.3 * (smooth_noise(rng, height, width, cells, 3) - 0.5)
