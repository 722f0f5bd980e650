import re,sys,collections,statistics
d=collections.defaultdict(lambda: collections.defaultdict(list))
cur=None
for l in open(sys.argv[1]):
    m=re.match(r"== round \d+ (\S+)",l)
    if m: cur=m.group(1); continue
    m=re.match(r"\s*\[([\d, ]+)\]\s+(\S+)\s+(\S+)\s+([\d.]+) ms.*?([\d.]+)% of stream",l)
    if m and cur:
        d[(m.group(1),m.group(2),m.group(3))][cur].append((float(m.group(4)),float(m.group(5))))
names=sys.argv[2:]
print("| shape | layout | pass | "+" | ".join(f"{n} ms (% of stream)" for n in names)+f" | {names[0]} / {names[-1]} |")
print("|---|"*1+"---|---|"+"---|"*len(names)+"---|")
for k,v in d.items():
    cells=[]; meds=[]
    for n in names:
        ms=statistics.median(x[0] for x in v[n]); pc=statistics.median(x[1] for x in v[n]); meds.append(ms)
        cells.append(f"{ms:.1f} ({pc:.0f}%)")
    print(f"| {k[0]} | {k[1]} | {k[2]} | "+" | ".join(cells)+f" | {meds[0]/meds[-1]:.2f}x |")
