"""Prints a Markdown comparison of one benchmark folder: values, in-process compute time, wall time
and peak RSS (from /usr/bin/time -v) for metricbench and PML + faiss."""
import json
import re
import sys

folder = sys.argv[1]


def time_v(path):
    text = open(path).read()
    wall = re.search(r"Elapsed \(wall clock\) time \(h:mm:ss or m:ss\): (\S+)", text).group(1)
    parts = [float(p) for p in wall.split(":")]
    seconds = sum(p * 60 ** i for i, p in enumerate(reversed(parts)))
    rss_kb = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", text).group(1))
    compute = re.search(r"evaluated in ([0-9.]+)s", text)
    cpu = float(re.search(r"User time \(seconds\): ([0-9.]+)", text).group(1)) + float(
        re.search(r"System time \(seconds\): ([0-9.]+)", text).group(1)
    )
    return seconds, rss_kb / 1024 / 1024, float(compute.group(1)) if compute else None, cpu


ours = json.load(open(f"{folder}/ours.json"))
pml = json.load(open(f"{folder}/pml.json"))
ours_wall, ours_rss, ours_compute, ours_cpu = time_v(f"{folder}/ours.time")
pml_wall, pml_rss, _, pml_cpu = time_v(f"{folder}/pml.time")
pml_compute = pml["seconds"]
print(f"| | metricbench | PML 2.9 + faiss-cpu | ratio |")
print(f"|---|---|---|---|")
print(f"| compute time (s) | {ours_compute:.2f} | {pml_compute:.2f} | {pml_compute / ours_compute:.1f}x |")
print(f"| process wall time (s) | {ours_wall:.2f} | {pml_wall:.2f} | {pml_wall / ours_wall:.1f}x |")
print(f"| process CPU time, user + sys (s) | {ours_cpu:.2f} | {pml_cpu:.2f} | {pml_cpu / ours_cpu:.1f}x |")
print(f"| peak RSS (GiB) | {ours_rss:.2f} | {pml_rss:.2f} | |")
print()
print("| metric | metricbench | PML 2.9 + faiss-cpu | abs. difference |")
print("|---|---|---|---|")
for name in sorted(pml["metrics"]):
    a = ours["metrics"].get(name)
    b = pml["metrics"][name]
    diff = abs(a - b) if a is not None else float("nan")
    print(f"| {name} | {a!r} | {b!r} | {diff:.3g} |")
