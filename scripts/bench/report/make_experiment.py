"""Writes a synthetic finished experiment in the worker's record format (docs/experiments.md) for
the report benchmark: FOLDS folds of EPOCHS epochs of ITERS iterations, two optimizers, val/train/
test accuracy tables, splits.yaml and the ensemble's meta table.

Usage: make_experiment.py FOLDER [EPOCHS=1000] [ITERS=100] [FOLDS=4]
"""
import math
import os
import random
import sys

folder = sys.argv[1]
epochs = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
iters = int(sys.argv[3]) if len(sys.argv) > 3 else 100
folds = int(sys.argv[4]) if len(sys.argv) > 4 else 4
rng = random.Random(0)
tag = "accuracies_normalized_compared_to_self_GlobalEmbeddingSpaceTester_level_0_"
os.makedirs(os.path.join(folder, "configs"), exist_ok=True)
with open(os.path.join(folder, "configs", "config_general.yaml"), "w") as f:
    f.write(f"num_epochs_train: {epochs}\niterations_per_epoch: {iters}\n")
with open(os.path.join(folder, "configs", "config_eval.yaml"), "w") as f:
    f.write("eval_metric_for_best_epoch: mean_average_precision_at_r\n")
metrics = ["AMI", "NMI", "mean_average_precision_at_r", "precision_at_1", "r_precision"]
for k in range(folds):
    fold = os.path.join(folder, f"Test50_50_Partitions{folds}_{k}")
    csvs = os.path.join(fold, "saved_csvs")
    os.makedirs(csvs, exist_ok=True)
    with open(os.path.join(fold, "splits.yaml"), "w") as f:
        for split, (a, b) in {"train": (0, 49), "val": (50, 74), "test": (75, 99)}.items():
            f.write(f'{split}:\n  num_samples: {(b - a + 1) * 20}\n  num_classes: {b - a + 1}\n'
                    f'  classes: ["{a}-{b}"]\n')
    best = (-1, -1.0)
    rows = {"TRAIN": [], "VAL": []}
    for e in range(-1, epochs + 1):
        base = 0.1 + 0.5 * (1 - math.exp(-max(e, 0) / (epochs / 5)))
        for split in rows:
            vals = [min(1.0, base + rng.gauss(0, 0.01) + (0.1 if split == "TRAIN" else 0))
                    for _ in metrics]
            if split == "VAL" and vals[2] > best[1]:
                best = (e, vals[2])
            extra = f",{best[0]},{best[1]}" if split == "VAL" else ""
            rows[split].append(f"{e}," + ",".join(f"{v}" for v in vals) + extra)
    for split, lines in rows.items():
        extra = ",best_epoch,best_accuracy" if split == "VAL" else ""
        with open(os.path.join(csvs, tag + split + ".csv"), "w") as f:
            f.write("epoch," + ",".join(metrics) + extra + "\n" + "\n".join(lines) + "\n")
    with open(os.path.join(csvs, tag + "TEST.csv"), "w") as f:
        f.write("epoch," + ",".join(metrics) + "\n" + f"{best[0]}," +
                ",".join(str(0.5 + rng.random() * 0.1) for _ in metrics) + "\n")
    with open(os.path.join(csvs, "loss_histories.csv"), "w") as f:
        f.write("iteration,total_loss,metric_loss\n")
        for it in range(1, epochs * iters + 1):
            v = 1.0 / math.sqrt(it) + rng.random() * 0.1
            f.write(f"{it},{v},{v}\n")
    for opt in ("trunk_optimizer_Adam", "embedder_optimizer_Adam"):
        with open(os.path.join(csvs, opt + ".csv"), "w") as f:
            f.write("iteration,lr\n")
            for it in range(1, epochs * iters + 1):
                f.write(f"{it},{1e-4 * 0.5 ** (it // (iters * 100))}\n")
meta = os.path.join(folder, "meta_logs", "saved_csvs")
os.makedirs(meta, exist_ok=True)
with open(os.path.join(meta, f"meta_ConcatenateEmbeddings_{tag}TEST.csv"), "w") as f:
    f.write("is_trained," + ",".join(metrics) + ",num_folds\n")
    f.write("0," + ",".join("0.1" for _ in metrics) + f",{folds}\n")
    f.write("1," + ",".join("0.6" for _ in metrics) + f",{folds}\n")
