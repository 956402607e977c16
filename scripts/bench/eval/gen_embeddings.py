"""Clustered float32 embeddings for the evaluation benchmark: C Gaussian class centres in d
dimensions, N points assigned round-robin to classes (then shuffled), isotropic noise, L2-normalised
rows. Writes e.npy (N x d float32) and l.npy (N int64) into OUT.

    python gen_embeddings.py N D C OUT [NOISE] [SEED]
"""
import os
import sys

import numpy as np

n, d, c, out = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
noise = float(sys.argv[5]) if len(sys.argv) > 5 else 1.0
seed = int(sys.argv[6]) if len(sys.argv) > 6 else 0
rng = np.random.default_rng(seed)
labels = np.arange(n) % c
rng.shuffle(labels)
centres = rng.standard_normal((c, d), dtype=np.float32)
emb = centres[labels] + noise * rng.standard_normal((n, d), dtype=np.float32)
emb /= np.linalg.norm(emb, axis=1, keepdims=True)
os.makedirs(out, exist_ok=True)
np.save(os.path.join(out, "e.npy"), emb.astype(np.float32))
np.save(os.path.join(out, "l.npy"), labels.astype(np.int64))
