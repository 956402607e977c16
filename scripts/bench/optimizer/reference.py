#!/usr/bin/env python3
"""Reference runs for the optimiser benchmark: Optuna GPSampler, Optuna TPESampler, Ax's default
generation strategy (Client API) and random search on the same functions, bounds and budget as
examples/bench_optimizer.rs (minimisation, simple regret = best found - known optimum).

Suggestion time is the wall time of one ask (Optuna `study.ask()`, Ax `get_next_trials(1)`),
median over the model-based phase (after each method's own startup trials) and at the last trial.

Environment: `optuna ax-platform` in $HOME/.cache/metricbench/bench-venv (see run.sh).
Usage: reference.py [--budget 40] [--seeds 5] [--methods optuna_gp,tpe,ax,random]
                    [--functions branin,...] [--json out.json]
"""
import argparse
import json
import logging
import math
import statistics
import time
import warnings

import numpy as np

warnings.filterwarnings("ignore")
logging.disable(logging.WARNING)


def branin(x):
    x1, x2 = x
    b = 5.1 / (4 * math.pi**2)
    c = 5 / math.pi
    t = 1 / (8 * math.pi)
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - t) * math.cos(x1) + 10


A = np.array([[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]])
P = np.array(
    [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ]
)
ALPHA = np.array([1.0, 1.2, 3.0, 3.2])


def hartmann6(x):
    x = np.asarray(x)
    return float(-np.sum(ALPHA * np.exp(-np.sum(A * (x - P) ** 2, axis=1))))


def ackley(x):
    x = np.asarray(x)
    d = len(x)
    return float(-20 * np.exp(-0.2 * np.sqrt(np.sum(x**2) / d)) - np.exp(np.sum(np.cos(2 * np.pi * x)) / d) + 20 + np.e)


def rosenbrock(x):
    return float(sum(100 * (x[i + 1] - x[i] ** 2) ** 2 + (1 - x[i]) ** 2 for i in range(len(x) - 1)))


def levy(x):
    w = [1 + (v - 1) / 4 for v in x]
    s = math.sin(math.pi * w[0]) ** 2
    for wi in w[:-1]:
        s += (wi - 1) ** 2 * (1 + 10 * math.sin(math.pi * wi + 1) ** 2)
    return s + (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)


PROBLEMS = {
    "branin": ([(-5.0, 10.0), (0.0, 15.0)], 0.397887357729738, branin),
    "hartmann6": ([(0.0, 1.0)] * 6, -3.32236801141551, hartmann6),
    "ackley5": ([(-32.768, 32.768)] * 5, 0.0, ackley),
    # The same Ackley box shifted by 10: its optimum is no longer the box centre (see functions.rs).
    "ackley5_shifted": ([(-22.768, 42.768)] * 5, 0.0, ackley),
    "rosenbrock4": ([(-5.0, 10.0)] * 4, 0.0, rosenbrock),
    "levy4": ([(-10.0, 10.0)] * 4, 0.0, levy),
}


# CPU seconds (all threads of this process) per model-based ask: on a shared machine wall time
# mostly measures the other tenants.
CPU_TIMES = []


def run_optuna(kind, bounds, f, seed, budget):
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if kind == "optuna_gp":
        sampler, startup = optuna.samplers.GPSampler(seed=seed), 10
    elif kind == "tpe":
        sampler, startup = optuna.samplers.TPESampler(seed=seed), 10
    else:
        sampler, startup = optuna.samplers.RandomSampler(seed=seed), 0
    study = optuna.create_study(direction="minimize", sampler=sampler)
    best, times, last = math.inf, [], 0.0
    for i in range(budget):
        t0 = time.perf_counter()
        c0 = time.process_time()
        trial = study.ask()
        x = [trial.suggest_float(f"x{j}", lo, hi) for j, (lo, hi) in enumerate(bounds)]
        dt = time.perf_counter() - t0
        if i >= startup:
            times.append(dt)
            CPU_TIMES.append(time.process_time() - c0)
        last = dt
        y = f(x)
        best = min(best, y)
        study.tell(trial, y)
    return best, times, last


def run_ax(bounds, f, seed, budget):
    from ax.api.client import Client
    from ax.api.configs import RangeParameterConfig

    client = Client(random_seed=seed)
    client.configure_experiment(
        parameters=[RangeParameterConfig(name=f"x{j}", parameter_type="float", bounds=(lo, hi)) for j, (lo, hi) in enumerate(bounds)]
    )
    client.configure_optimization(objective="-f")
    best, times, last = math.inf, [], 0.0
    for i in range(budget):
        t0 = time.perf_counter()
        c0 = time.process_time()
        trials = client.get_next_trials(max_trials=1)
        dt = time.perf_counter() - t0
        # Ax's default strategy: 5 Sobol trials, then BoTorch.
        if i >= 5:
            times.append(dt)
            CPU_TIMES.append(time.process_time() - c0)
        last = dt
        for idx, params in trials.items():
            y = f([params[f"x{j}"] for j in range(len(bounds))])
            best = min(best, y)
            client.complete_trial(trial_index=idx, raw_data={"f": y})
    return best, times, last


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--budget", type=int, default=40)
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--first-seed", type=int, default=0, help="seeds FIRST..FIRST+SEEDS-1")
    ap.add_argument("--methods", default="optuna_gp,tpe,ax,random")
    ap.add_argument("--functions", default=",".join(PROBLEMS))
    ap.add_argument("--json")
    args = ap.parse_args()
    rows = []
    print(f"reference methods, budget {args.budget}, seeds {args.first_seed}..{args.first_seed + args.seeds - 1}", flush=True)
    print(f"{'method':<10} {'function':<12} {'median regret':>14} {'median t/sugg ms':>17} {'median t@last ms':>17} {'cpu ms':>10}", flush=True)
    for method in args.methods.split(","):
        for name in args.functions.split(","):
            bounds, opt, f = PROBLEMS[name]
            regrets, times, lasts = [], [], []
            CPU_TIMES.clear()
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                if method == "ax":
                    best, t, last = run_ax(bounds, f, seed, args.budget)
                else:
                    best, t, last = run_optuna(method, bounds, f, seed, args.budget)
                regrets.append(best - opt)
                times.extend(t)
                lasts.append(last)
            mr = statistics.median(regrets)
            mt = 1e3 * statistics.median(times) if times else float("nan")
            ml = 1e3 * statistics.median(lasts)
            mc = 1e3 * statistics.median(CPU_TIMES) if CPU_TIMES else float("nan")
            print(f"{method:<10} {name:<12} {mr:>14.3e} {mt:>17.2f} {ml:>17.2f} {mc:>10.2f}", flush=True)
            rows.append(
                {"method": method, "function": name, "median_regret": mr, "median_suggest_ms": mt, "median_last_suggest_ms": ml, "median_suggest_cpu_ms": mc, "regrets": regrets}
            )
            if args.json:
                with open(args.json, "w") as fh:
                    json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
