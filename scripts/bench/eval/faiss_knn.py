"""faiss-cpu alone (IndexFlatL2, the kNN PML's AccuracyCalculator uses) on e.npy / l.npy compared to
themselves, with PML's k = max_bin_count, self-match removal and lone-query rule, and PML's
definitions of P@1, R-precision and MAP@R computed in numpy. For sets where PML's own label
bookkeeping does not fit in memory (120k x 22,634 classes). Prints JSON: seconds and metrics.

    python faiss_knn.py DIR
"""
import json
import os
import sys
import time

import faiss
import numpy as np

folder = sys.argv[1]
emb = np.ascontiguousarray(np.load(os.path.join(folder, "e.npy")), dtype=np.float32)
labels = np.load(os.path.join(folder, "l.npy"))
start = time.perf_counter()
_, inverse, counts = np.unique(labels, return_inverse=True, return_counts=True)
relevant = counts[inverse] - 1  # reference counts minus the self match
k = int(relevant.max())
index = faiss.IndexFlatL2(emb.shape[1])
index.add(emb)
_, found = index.search(emb, k + 1)
# PML's self-match removal: drop the query's own column, else the last one.
rows = np.arange(len(labels))
is_self = found == rows[:, None]
has_self = is_self.any(axis=1)
drop = np.where(has_self, is_self.argmax(axis=1), k)
keep = np.ones_like(found, dtype=bool)
keep[rows, drop] = False
knn = found[keep].reshape(len(labels), k)
rel = labels[knn] == labels[:, None]
counted = relevant > 0
rel, r = rel[counted], relevant[counted]
cols = np.arange(1, k + 1)
within_r = cols[None, :] <= r[:, None]
precision = np.cumsum(rel, axis=1) / cols
seconds = time.perf_counter() - start
metrics = {
    "precision_at_1": float(rel[:, 0].mean()),
    "r_precision": float(((rel & within_r).sum(1) / np.minimum(r, k)).mean()),
    "mean_average_precision_at_r": float(((precision * rel * within_r).sum(1) / r).mean()),
    "mean_average_precision": float(((precision * rel).sum(1) / r).mean()),
}
print(json.dumps({"seconds": seconds, "metrics": metrics}))
