"""Print the Table 5 summary of runs made by examples/table5-digits.sh (or the CIFAR recipes).
#   ./run python examples/table5_summary.py runs/table5-digits
Reads OUT/wd<decay>/<row>/summary.json and prints a Markdown table of median_last10_test_error
(the median test error of the last 10 epochs, as Table 5 reports), one column per weight decay.
"""
import json
import sys
from pathlib import Path

root = Path(sys.argv[1])
decays = sorted(p for p in root.iterdir() if p.is_dir() and p.name.startswith("wd"))
rows = []
for d in decays:
    for run in sorted(p for p in d.iterdir() if (p / "summary.json").is_file()):
        if run.name not in rows:
            rows.append(run.name)
order = json.loads((root / "rows.json").read_text()) if (root / "rows.json").is_file() else None
rows.sort(key=lambda r: order.index(r) if order and r in order else len(rows))
print("| row | " + " | ".join(f"weight decay {d.name[2:]}" for d in decays) + " |")
print("| --- |" + " ---: |" * len(decays))
for row in rows:
    cells = []
    for d in decays:
        path = d / row / "summary.json"
        cells.append(f"{json.loads(path.read_text())['median_last10_test_error']:.2f}" if path.is_file() else "-")
    print(f"| {row} | " + " | ".join(cells) + " |")
