#!/usr/bin/env python3
"""How sure is a 'median lower' verdict? For each function, compares two methods' final regrets
(the `regrets` lists of bench_optimizer / reference.py JSON rows; several files per side are
concatenated, e.g. seeds 0-19 and 20-39) by the ratio of their medians, with a bootstrap 90%
interval (seeds resampled with replacement on each side independently, 20,000 times, fixed seed)
and the share of resamples in which side A's median is the lower. When the rows carry
`in_sample_regrets` (noisy suite: the true regret of the best point each run evaluated), the same
is printed for those, which tells whether a gap comes from where the points were placed or from
which of them the method recommended.

Usage: median_ci.py A.json[,A2.json...] B.json[,B2.json...] [--method-a NAME] [--method-b NAME]
(the method names default to the first method in each side's files). Standard library only.
"""
import json
import random
import statistics
import sys


def load(paths, method):
    rows = []
    for path in paths.split(","):
        try:
            with open(path) as fh:
                data = json.load(fh)
            if not isinstance(data, list) or not all(
                isinstance(r, dict) and {"method", "function", "regrets"} <= r.keys() for r in data
            ):
                raise ValueError("expected a JSON list of rows with method, function and regrets")
        except (OSError, ValueError) as e:
            sys.exit(f"median_ci.py: {path}: {e}")
        rows.extend(data)
    if not rows:
        sys.exit(f"median_ci.py: {paths}: no rows")
    method = method or rows[0]["method"]
    by_function = {}
    for r in rows:
        if r["method"] != method:
            continue
        entry = by_function.setdefault(r["function"], {"regrets": [], "in_sample": []})
        entry["regrets"].extend(r["regrets"])
        entry["in_sample"].extend(r.get("in_sample_regrets", []))
    if not by_function:
        sys.exit(f"median_ci.py: {paths}: no rows of method {method!r}")
    return method, by_function


def interval(a, b, resamples=20000):
    # A fresh, fixed stream per comparison: a row's interval does not depend on which other
    # functions or columns the files hold.
    rng = random.Random(0)
    ratios = []
    a_lower = 0
    for _ in range(resamples):
        ma = statistics.median(rng.choices(a, k=len(a)))
        mb = statistics.median(rng.choices(b, k=len(b)))
        ratios.append(ma / mb if mb > 0 else float("inf"))
        a_lower += ma < mb
    ratios.sort()
    lo = ratios[int(0.05 * resamples)]
    hi = ratios[int(0.95 * resamples) - 1]
    return statistics.median(a) / statistics.median(b), lo, hi, a_lower / resamples


def main():
    args = sys.argv[1:]
    opts = {}
    for flag in ("--method-a", "--method-b"):
        if flag in args:
            i = args.index(flag)
            if i + 1 >= len(args):
                sys.exit(f"median_ci.py: {flag} needs a method name")
            opts[flag] = args[i + 1]
            del args[i : i + 2]
    if len(args) != 2:
        sys.exit(__doc__)
    name_a, a = load(args[0], opts.get("--method-a"))
    name_b, b = load(args[1], opts.get("--method-b"))
    print(f"A = {name_a}, B = {name_b}; ratio of medians A/B, bootstrap 90% interval, P(A's median lower)")
    print("| function | seeds A / B | median A | median B | A/B [90% interval] | P(A lower) | in-sample A | in-sample B | in-sample A/B [90%] |")
    print("|---|---|---|---|---|---|---|---|---|")
    for function, ra in a.items():
        if function not in b:
            continue
        rb = b[function]
        ratio, lo, hi, p = interval(ra["regrets"], rb["regrets"])
        cells = [
            function,
            f"{len(ra['regrets'])} / {len(rb['regrets'])}",
            f"{statistics.median(ra['regrets']):.3g}",
            f"{statistics.median(rb['regrets']):.3g}",
            f"{ratio:.2f} [{lo:.2f}, {hi:.2f}]",
            f"{p:.2f}",
        ]
        if ra["in_sample"] and rb["in_sample"]:
            ratio, lo, hi, _ = interval(ra["in_sample"], rb["in_sample"])
            cells += [
                f"{statistics.median(ra['in_sample']):.3g}",
                f"{statistics.median(rb['in_sample']):.3g}",
                f"{ratio:.2f} [{lo:.2f}, {hi:.2f}]",
            ]
        else:
            cells += ["–", "–", "–"]
        print("| " + " | ".join(cells) + " |")


if __name__ == "__main__":
    main()
