"""Writes a CUB-like image folder: CLASSES folders of JPEGs about 500x375 (sizes vary a little, a
tenth portrait), photographic enough that JPEG sizes are realistic (smooth shading, edges, noise).

Usage: python gen_images.py OUT_DIR COUNT [CLASSES]
"""

import os
import sys

import numpy as np
from PIL import Image


def main(out, count, classes):
    rng = np.random.default_rng(0)
    for n in range(count):
        c = n % classes
        w, h = int(rng.integers(460, 520)), int(rng.integers(330, 390))
        if n % 10 == 0:
            w, h = h, w
        y, x = np.mgrid[0:h, 0:w].astype(np.float32)
        f = rng.uniform(8, 40, size=3)
        base = np.stack([127 + 100 * np.sin(x / f[0] + c) * np.cos(y / f[1]),
                         127 + 100 * np.cos((x + y) / f[2]),
                         255 * (x / w) * (y / h)], axis=-1)
        img = base + rng.normal(0, 10, size=(h, w, 3))
        folder = os.path.join(out, f"{c:03d}.class")
        os.makedirs(folder, exist_ok=True)
        Image.fromarray(np.clip(img, 0, 255).astype(np.uint8)).save(
            os.path.join(folder, f"{n:05d}.jpg"), quality=85)


if __name__ == "__main__":
    main(sys.argv[1], int(sys.argv[2]), int(sys.argv[3]) if len(sys.argv) > 3 else 100)
