"""PML 2.9 AccuracyCalculator (faiss-cpu IndexFlatL2 kNN, faiss k-means) on e.npy / l.npy, the
embeddings compared to themselves, k = max_bin_count. Prints JSON: compute seconds and metrics.

    python pml_eval.py DIR [--with-clustering]
"""
import json
import os
import sys
import time

import numpy as np
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

folder = sys.argv[1]
clustering = "--with-clustering" in sys.argv
emb = torch.from_numpy(np.load(os.path.join(folder, "e.npy")))
labels = torch.from_numpy(np.load(os.path.join(folder, "l.npy")))
calc = AccuracyCalculator(
    exclude=() if clustering else ("NMI", "AMI"),
    k="max_bin_count",
    device=torch.device("cpu"),
)
start = time.perf_counter()
acc = calc.get_accuracy(emb, labels)
seconds = time.perf_counter() - start
print(json.dumps({"seconds": seconds, "metrics": {k: float(v) for k, v in acc.items()}}))
