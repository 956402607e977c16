"""PML 2.9's AccuracyCalculator on the GPU, the reference for scripts/device/knn_check.sh: e.npy /
l.npy compared to themselves, k = max_bin_count, no clustering metrics. The kNN is faiss-gpu
(PML's default FaissKNN, IndexFlatL2 on the GPU) when faiss is importable and sees a GPU, else PML's
CustomKNN with a squared-L2 torch distance on the GPU in row batches (the same ranking as
IndexFlatL2). Prints JSON: knn (which one), seconds (get_accuracy only, after a warm-up of CUDA
and cuBLAS), metrics.

    python pml_knn_gpu.py DIR [BATCH_ROWS]
"""
import json
import os
import sys
import time

import numpy as np
import torch
from pytorch_metric_learning.utils.accuracy_calculator import AccuracyCalculator

folder = sys.argv[1]
batch_rows = int(sys.argv[2]) if len(sys.argv) > 2 else 4096
device = torch.device("cuda")
emb = torch.from_numpy(np.load(os.path.join(folder, "e.npy"))).to(device)
labels = torch.from_numpy(np.load(os.path.join(folder, "l.npy"))).to(device)

knn_name = "CustomKNN(LpDistance(power=2)) on the GPU"
knn_func = None
try:
    import faiss

    if faiss.get_num_gpus() > 0:
        knn_name = f"FaissKNN (faiss {faiss.__version__}, GPU)"
except ImportError:
    pass
if knn_name.startswith("CustomKNN"):
    from pytorch_metric_learning.distances import LpDistance
    from pytorch_metric_learning.utils.inference import CustomKNN

    knn_func = CustomKNN(LpDistance(normalize_embeddings=False, power=2), batch_size=batch_rows)

kwargs = {"knn_func": knn_func} if knn_func is not None else {}
calc = AccuracyCalculator(exclude=("NMI", "AMI"), k="max_bin_count", device=device, **kwargs)
# Warm-up: the CUDA context and the cuBLAS handle, which the worker sets up while loading.
warm = torch.randn(256, 256, device=device)
(warm @ warm).sum().item()
torch.cuda.synchronize()
start = time.perf_counter()
acc = calc.get_accuracy(emb, labels)
torch.cuda.synchronize()
seconds = time.perf_counter() - start
print(json.dumps({"knn": knn_name, "seconds": seconds,
                  "metrics": {k: float(v) for k, v in acc.items()}}))
