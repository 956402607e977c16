#!/usr/bin/env python3
"""Merges the JSON rows of bench_optimizer (ours) and reference.py into one markdown table:
median final regret and median suggestion time per method and function, plus the ratios of
ours against each reference measured in the same run. Standard library only."""
import json
import sys

rows = []
for path in sys.argv[1:]:
    with open(path) as fh:
        rows.extend(json.load(fh))

methods = []
functions = []
for r in rows:
    if r["method"] not in methods:
        methods.append(r["method"])
    if r["function"] not in functions:
        functions.append(r["function"])
cell = {(r["method"], r["function"]): r for r in rows}


def fmt_regret(v):
    return f"{v:.2e}"


def fmt_ms(v):
    return "n/a" if v != v else f"{v:.1f}"


def time_of(r):
    c = r.get("median_suggest_cpu_ms")
    return c if c is not None and c == c else r["median_suggest_ms"]


def fmt_time(r):
    c = r.get("median_suggest_cpu_ms")
    if c is not None and c == c:
        return f"{c:.1f} cpu"
    return f"{fmt_ms(r['median_suggest_ms'])} wall"


print("Median final simple regret after 40 evaluations (lower is better); in brackets the median")
print("suggestion time of the model-based phase in ms: CPU time where measured (`cpu`), else wall.\n")
print("| function | " + " | ".join(methods) + " |")
print("|---|" + "---|" * len(methods))
for f in functions:
    cells = []
    for m in methods:
        r = cell.get((m, f))
        cells.append("–" if r is None else f"{fmt_regret(r['median_regret'])} ({fmt_time(r)})")
    print(f"| {f} | " + " | ".join(cells) + " |")

ours = "metricbench-gp"
others = [m for m in methods if m != ours]
if ours in methods and others:
    print("\nRatios ours / reference (regret: < 1 means ours is better; time: < 1 means ours is faster).\n")
    print("| function | " + " | ".join(f"regret vs {m} | time vs {m}" for m in others) + " |")
    print("|---|" + "---|---|" * len(others))
    for f in functions:
        a = cell.get((ours, f))
        cells = []
        for m in others:
            b = cell.get((m, f))
            if a is None or b is None:
                cells += ["–", "–"]
                continue
            rr = a["median_regret"] / b["median_regret"] if b["median_regret"] > 0 else float("inf")
            # Compare like with like: CPU with CPU when both have it, else wall with wall.
            both_cpu = a.get("median_suggest_cpu_ms") is not None and b.get("median_suggest_cpu_ms") is not None
            ta, tb = (time_of(a), time_of(b)) if both_cpu else (a["median_suggest_ms"], b["median_suggest_ms"])
            tr = ta / tb if tb == tb and tb > 0 else float("nan")
            cells += [f"{rr:.2f}", f"{tr:.3f}"]
        print(f"| {f} | " + " | ".join(cells) + " |")
