"""Training throughput of metricbench-worker on the benchmark job (see run.sh). Sends one protocol
job on stdin and measures iterations per second between the first and the last `progress` events of
training (so process start, dataset generation and evaluation are excluded). DEVICE=cuda runs the
job on the GPU (default cpu)."""
import json
import os
import subprocess
import sys
import tempfile
import time

worker = sys.argv[1]
iterations = int(sys.argv[2]) if len(sys.argv) > 2 else 200
# WIDTH scales the trunk (256-512-512 by default) and BATCH the batch size, for a GPU-sized job.
width = int(os.environ.get("WIDTH", "512"))
batch = int(os.environ.get("BATCH", "128"))
config = {
    "training_method": "MetricLossOnly",
    "dataset": {"Synthetic": {"num_classes": 100, "samples_per_class": 40, "input_dim": 64, "seed": 0}},
    "special_split_scheme_name": "old_approach",
    "num_epochs_train": 1,
    "iterations_per_epoch": iterations,
    "save_interval": 1,
    "check_untrained_accuracy": False,
    "patience": None,
    "seed": 0,
    "device": os.environ.get("DEVICE", "cpu"),
    "models": {
        "trunk": {"MLP": {"layer_sizes": [width // 2, width, width], "final_relu": True}},
        "embedder": {"MLP": {"layer_sizes": [128]}},
    },
    "batch_size": batch,
    "optimizers": {
        "trunk_optimizer": {"RMSprop": {"lr": 1e-4}},
        "embedder_optimizer": {"RMSprop": {"lr": 1e-4}},
    },
    "loss_funcs": {"metric_loss": {"ContrastiveLoss": None}},
    "sampler": {"MPerClassSampler": {"m": 4}},
    "mining_funcs": {},
}
with tempfile.TemporaryDirectory() as folder:
    job = {"protocol": 1, "action": "train", "experiment_folder": folder, "config": config,
           "resume": None, "splits_to_eval": ["val"]}
    proc = subprocess.Popen([worker], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            stderr=subprocess.DEVNULL, text=True)
    proc.stdin.write(json.dumps(job) + "\n")
    proc.stdin.flush()
    marks = []
    for line in proc.stdout:
        event = json.loads(line)
        if event["event"] == "ready":
            print(f"worker device {event['device']}")
        if event["event"] == "progress" and event.get("loss") is not None:
            marks.append((time.perf_counter(), event["iteration"]))
        if event["event"] == "error":
            sys.exit(f"worker error: {event}")
    proc.wait()
(t0, i0), (t1, i1) = marks[0], marks[-1]
print(f"worker iterations_per_second {(i1 - i0) / (t1 - t0):.2f}")
