"""Writes the benchmark's batches: N random images [N, 3, SIZE, SIZE] (float32, ImageNet-normalised
range) and labels (4 samples per class), as images.npy / labels.npy in OUT."""
import os
import sys

import numpy as np

out, n, size = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
os.makedirs(out, exist_ok=True)
rng = np.random.default_rng(0)
np.save(os.path.join(out, "images.npy"), rng.standard_normal((n, 3, size, size), dtype=np.float32))
np.save(os.path.join(out, "labels.npy"), (np.arange(n) // 4).astype(np.int64))
