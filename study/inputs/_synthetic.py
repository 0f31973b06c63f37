"""A built-in image classification set, generated from a seed, for demos, tests and CI."""

from __future__ import annotations

import numpy as np

CHUNK = 256  # images generated at once, so large sets at 224 px stay within a few hundred MB


def synthetic_images(
    total: int, classes: int, image_size: int, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """Generate `total` RGB images (uint8) in `classes` balanced classes.

    Each class is a sinusoidal grating with its own orientation, frequency and colour; every image
    gets a random phase, contrast, brightness and pixel noise, so the classes are learnable but not
    trivially identical. The same arguments always give the same images.

    Example:
        >>> images, labels, names = synthetic_images(100, 5, 32, seed=0)
        >>> images.shape, images.dtype, names[0]
        ((100, 32, 32, 3), dtype('uint8'), 'class_0')
    """
    rng = np.random.default_rng(seed)
    labels = np.arange(total) % classes
    rng.shuffle(labels)
    orientation = np.pi * np.arange(classes) / classes
    frequency = 2.0 + 3.0 * (np.arange(classes) % 3)
    colour = 0.35 + 0.5 * rng.random((classes, 3))
    grid = np.linspace(0.0, 1.0, image_size, dtype=np.float32)
    x, y = np.meshgrid(grid, grid)
    images = np.empty((total, image_size, image_size, 3), dtype=np.uint8)
    for start in range(0, total, CHUNK):
        label = labels[start : start + CHUNK]
        n = len(label)
        phase = rng.uniform(0, 2 * np.pi, (n, 1, 1)).astype(np.float32)
        contrast = rng.uniform(0.2, 0.4, (n, 1, 1, 1)).astype(np.float32)
        brightness = rng.uniform(-0.1, 0.1, (n, 1, 1, 1)).astype(np.float32)
        theta = orientation[label][:, None, None]
        wave = np.sin(
            2 * np.pi * frequency[label][:, None, None] * (x * np.cos(theta) + y * np.sin(theta))
            + phase
        )
        pixels = colour[label][:, None, None, :] * (0.6 + contrast * wave[..., None]) + brightness
        pixels += rng.normal(0.0, 0.06, pixels.shape).astype(np.float32)
        images[start : start + n] = np.clip(pixels * 255.0, 0, 255).astype(np.uint8)
    return images, labels.astype(np.int64), [f"class_{k}" for k in range(classes)]
