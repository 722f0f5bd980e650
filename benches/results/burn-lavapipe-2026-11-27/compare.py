"""Median per row over the rounds of run.sh's log, ours against burn's, as a Markdown table."""
import collections
import re
import statistics
import sys

d = collections.defaultdict(lambda: collections.defaultdict(list))
side = None
for line in open(sys.argv[1]):
    m = re.match(r"== round \d+ (\S+)", line)
    if m:
        side = m.group(1)
        continue
    m = re.match(r"\s*\[([\d, ]+)\]\s+(\S+)\s+(fwd-train|fwd-eval|backward)\s+(-?[\d.]+) ms", line)
    if m and side:
        d[(m.group(1), m.group(3))][side].append(float(m.group(4)))
print("| shape | pass | ours ms | burn ms | burn / ours |")
print("|---|---|---|---|---|")
ratios = []
for (shape, pas), v in d.items():
    ours, burn = statistics.median(v["ours"]), statistics.median(v["burn"])
    ratios.append(burn / ours)
    print(f"| {shape} | {pas} | {ours:.1f} | {burn:.1f} | {burn / ours:.2f}x |")
g = statistics.geometric_mean(ratios)
print(f"\ngeometric mean {g:.2f}x over {len(ratios)} rows; lowest {min(ratios):.2f}x")
