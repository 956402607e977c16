"""Runs a command and reports the peak proportional set size (PSS) of its whole process tree,
sampled every 20 ms, on stderr as JSON: forked DataLoader workers share pages with their parent,
so summing PSS counts memory once where summing RSS would count it per process.

Usage: python peak_mem.py CMD ARGS...
"""

import json
import os
import subprocess
import sys
import time


def tree(pid):
    pids, frontier = [pid], [pid]
    while frontier:
        p = frontier.pop()
        try:
            with open(f"/proc/{p}/task/{p}/children") as f:
                kids = [int(k) for k in f.read().split()]
        except OSError:
            kids = []
        pids += kids
        frontier += kids
    return pids


def pss_kib(pid):
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Pss:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def main(cmd):
    proc = subprocess.Popen(cmd)
    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(pss_kib(p) for p in tree(proc.pid)))
        time.sleep(0.02)
    print(json.dumps(dict(peak_pss_mib=peak / 1024)), file=sys.stderr)
    sys.exit(proc.returncode)


if __name__ == "__main__":
    main(sys.argv[1:])
