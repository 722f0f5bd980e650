"""Medians (or minima, --min) per row over the rounds of a CPU-adapter A/B log.

A log holds "== round N NAME" lines, each followed by `bench` output; NAME is the setting
of that round (a binary, a flag). Usage:
    python3 benches/medians.py [--min] LOG NAME [NAME ...]
prints a Markdown table: per shape, layout and pass, each NAME's median milliseconds
(percent of stream), and the ratio of the first NAME's to the last's.
"""
import collections
import re
import statistics
import sys

args = sys.argv[1:]
pick = statistics.median
best_pct = statistics.median
if args and args[0] == "--min":
    pick, best_pct, args = min, max, args[1:]
log, names = args[0], args[1:]
d = collections.defaultdict(lambda: collections.defaultdict(list))
cur = None
for line in open(log):
    m = re.match(r"== round \d+ (\S+)", line)
    if m:
        cur = m.group(1)
        continue
    m = re.match(r"\s*\[([\d, ]+)\]\s+(\S+)\s+(\S+)\s+([\d.]+) ms.*?([\d.]+)% of stream", line)
    if m and cur:
        d[(m.group(1), m.group(2), m.group(3))][cur].append((float(m.group(4)), float(m.group(5))))
print("| shape | layout | pass | " + " | ".join(f"{n} ms (% of stream)" for n in names)
      + f" | {names[0]} / {names[-1]} |")
print("|---|---|---|" + "---|" * len(names) + "---|")
for k, v in d.items():
    cells, ms = [], []
    for n in names:
        t = pick(x[0] for x in v[n])
        pct = best_pct(x[1] for x in v[n])
        ms.append(t)
        cells.append(f"{t:.1f} ({pct:.0f}%)")
    print(f"| {k[0]} | {k[1]} | {k[2]} | " + " | ".join(cells) + f" | {ms[0] / ms[-1]:.2f}x |")
