#!/usr/bin/env python3
"""A metricbench plugin worker in Python (standard library only).

It speaks worker protocol v1 (docs/protocol.md): it reads one job line on stdin, answers with JSON
event lines on stdout, and writes human logs to stderr. Use it as a template for a worker that trains
with your own PyTorch code:

    metricbench run --experiment_name x --worker_command "[python3, scripts/examples/python_worker.py]"

Instead of training a network it "trains" towards a known objective, so tuning studies can be tested
against a known optimum: the numbers under the config key `example_parameters` (a mapping
name -> number) score exp(-sum((v - 0.5)^2) / 0.1), which is 1 when every value is 0.5. Epoch e
of `num_epochs_train` reports score * (1 - 0.5**e) on `val` (as `mean_average_precision_at_r` and
`precision_at_1`), once per fold of `num_training_sets`.

Actions: `train` as above; `evaluate` reports every fold's `test` metrics (score * 0.9, as if the
test classes were a little harder) and `evaluate_ensemble` one `test` evaluation of fold `ensemble`.

`example_noise_sd: S` adds Gaussian noise of sd S to each fold's value (seeded by the experiment
folder and the fold), so a study sees noisy objectives with a real SEM over folds, as with real
training; the noise-free score is written to `python_worker_result.json` as `true_objective`.

For testing the coordinator's failure handling, `example_behaviour` may be `crash` (exit 3 before any
result), `garbage` (print a non-JSON line), `hang` (sleep forever), `nan` (report a NaN objective),
`error` (report an error event), `oom` (allocate memory until something stops it, 64 MB at a time),
or `normal`; `example_behaviour_by_trial: {3: crash}` sets it for
one trial index of a study. `example_run_log: PATH` appends `start <folder>` / `done <folder>`
lines, so tests can count how often each trial ran. `example_objective_metric: NAME` reports the
objective under its own name (as a plugin with a metric of its own would) instead of the config's
`eval_metric_for_best_epoch`.
"""

import hashlib
import json
import math
import os
import random
import sys
import threading
import time

PROTOCOL = 1


def emit(event, **fields):
    fields["event"] = event
    sys.stdout.write(json.dumps(fields) + "\n")
    sys.stdout.flush()


def log(message):
    sys.stderr.write(message + "\n")
    sys.stderr.flush()


def score_of(parameters):
    values = [v for v in parameters.values() if isinstance(v, (int, float)) and not isinstance(v, bool)]
    return math.exp(-sum((v - 0.5) ** 2 for v in values) / 0.1)


def main():
    line = sys.stdin.readline()
    if not line:
        emit("error", kind="config", message="no job received on stdin")
        return 1
    try:
        job = json.loads(line)
    except json.JSONDecodeError as e:
        emit("error", kind="config", message=f"the job line is not valid JSON: {e}")
        return 1
    if job.get("protocol") != PROTOCOL:
        emit("error", kind="config", message=f"this worker speaks protocol {PROTOCOL}, got {job.get('protocol')!r}")
        return 1

    stop = threading.Event()

    def listen():
        for command_line in sys.stdin:
            try:
                if json.loads(command_line).get("command") == "stop":
                    log("stop requested")
                    stop.set()
            except json.JSONDecodeError:
                log(f"ignoring malformed command {command_line!r}")

    threading.Thread(target=listen, daemon=True).start()

    config = job["config"]
    emit("ready", name="python-example-worker", version="0.1", device="cpu", protocol=PROTOCOL)
    behaviour = config.get("example_behaviour") or "normal"
    trial = job.get("trial") or {}
    by_trial = config.get("example_behaviour_by_trial") or {}
    if "index" in trial and str(trial["index"]) in {str(k) for k in by_trial}:
        behaviour = {str(k): v for k, v in by_trial.items()}[str(trial["index"])]
    run_log = config.get("example_run_log")

    def note(what):
        if run_log:
            with open(run_log, "a") as f:
                f.write(f"{what} {job['experiment_folder']} {job['action']}\n")

    note("start")
    parameters = config.get("example_parameters") or {}
    if not isinstance(parameters, dict):
        emit("error", kind="config", message="example_parameters must be a mapping of name -> number")
        return 1
    if behaviour == "crash":
        log("crashing on purpose (example_behaviour: crash)")
        return 3
    if behaviour == "garbage":
        print("this is not JSON", flush=True)
    if behaviour == "hang":
        time.sleep(10**6)
    if behaviour == "oom":
        log("allocating memory until stopped (example_behaviour: oom)")
        hoard = []
        while True:
            # bytearray(n) is zero-filled, so the pages are really touched and counted as RSS.
            hoard.append(bytearray(64 << 20))
            time.sleep(0.05)
    if behaviour == "error":
        emit("error", kind="config", message="failing on purpose (example_behaviour: error)")
        return 1

    epochs = int(config.get("num_epochs_train") or 1)
    folds = int(config.get("num_training_sets") or 1)
    if job["action"] in ("evaluate", "evaluate_ensemble"):
        primary = config.get("eval_metric_for_best_epoch") or "mean_average_precision_at_r"
        score = score_of(parameters) * 0.9
        names = ["ensemble"] if job["action"] == "evaluate_ensemble" else [f"fold{i}" for i in range(folds)]
        results = []
        for name in names:
            metrics = {primary: score, "precision_at_1": score}
            for split in job["splits_to_eval"]:
                emit("evaluation", fold=name, epoch=epochs, split=split, metrics=metrics, is_best=False)
            results.append({"fold": name, "best_epoch": epochs, "metrics": metrics})
        note("done")
        emit("result", objective={"metric": primary, "mean": score, "sem": None}, folds=results)
        return 0
    seconds_per_epoch = float(config.get("example_seconds_per_epoch") or 0.0)
    noise_sd = float(config.get("example_noise_sd") or 0.0)
    primary = config.get("eval_metric_for_best_epoch") or "mean_average_precision_at_r"
    score = float("nan") if behaviour == "nan" else score_of(parameters)
    folder = job["experiment_folder"]
    os.makedirs(folder, exist_ok=True)
    fold_results = []
    for fold in range(folds):
        name = f"fold{fold}"
        best = None
        # One noise draw per fold, the same at every epoch (a fold's split decides how well it
        # does), seeded so a re-run of the same trial reports the same values.
        seed = int.from_bytes(hashlib.sha256(f"{os.path.basename(os.path.normpath(job['experiment_folder']))}/{name}".encode()).digest()[:8], "little")
        fold_noise = random.Random(seed).gauss(0.0, noise_sd) if noise_sd > 0 else 0.0
        for epoch in range(1, epochs + 1):
            time.sleep(seconds_per_epoch)
            emit("progress", fold=name, epoch=epoch, iteration=epoch, total_iterations=epochs, loss=1.0 / epoch)
            value = score * (1 - 0.5**epoch) + fold_noise
            metrics = {primary: None if math.isnan(value) else value, "precision_at_1": None if math.isnan(value) else value}
            is_best = not math.isnan(value) and (best is None or value > best[1])
            if is_best:
                best = (epoch, value, metrics)
            emit("evaluation", fold=name, epoch=epoch, split="val", metrics=metrics, is_best=is_best)
            if stop.is_set():
                break
        best = best or (0, float("nan"), {primary: None})
        fold_results.append({"fold": name, "best_epoch": best[0], "metrics": best[2]})
        if stop.is_set():
            break
    values = [f["metrics"][primary] for f in fold_results if f["metrics"].get(primary) is not None]
    mean = sum(values) / len(values) if values else None
    sem = None
    if len(values) > 1:
        var = sum((v - mean) ** 2 for v in values) / (len(values) - 1)
        sem = math.sqrt(var / len(values))
    # Record what was run, written atomically like every metricbench file.
    record = os.path.join(folder, "python_worker_result.json")
    with open(record + ".tmp", "w") as f:
        json.dump({"parameters": parameters, "folds": fold_results, "objective": mean, "true_objective": score * (1 - 0.5**epochs)}, f)
    os.replace(record + ".tmp", record)
    note("done")
    objective_metric = config.get("example_objective_metric") or primary
    emit("result", objective={"metric": objective_metric, "mean": mean, "sem": sem}, folds=fold_results)
    return 0


if __name__ == "__main__":
    sys.exit(main())
