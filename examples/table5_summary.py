"""Print the Table 5 summary of runs made by examples/table5-digits.sh or the CIFAR recipes.
#   ./run python examples/table5_summary.py runs/table5-digits
Reads OUT/wd<decay>/<row>/summary.json (table5-digits.sh) or OUT/<row>-wd<decay>/summary.json (the
examples/table5/ recipes run with --out OUT/<recipe name>) and prints a Markdown table of
median_last10_test_error (the median test error of the last 10 epochs, as Table 5 reports), one
column per weight decay, rows in the paper's order.
"""
import json
import re
import sys
from pathlib import Path

# Table 5's rows, top to bottom: ERM, mixup (AC + RP, then KNN; the SC variants beside their AC ones),
# latent layers 1-5, mixing inputs only, label smoothing, mixing inputs + label smoothing, Gaussian noise.
# Rows with a number (layer k, epsilon, sigma) are ordered by it within their group.
FIXED = ["erm", "mixup-ac-rp", "mixup-sc-rp", "mixup-ac-knn", "mixup-sc-knn"]
GROUPS = ["latent-layer", "inputs-only-", "label-smoothing-", "mixup-label-smoothing-", "gaussian-noise-"]
INPUTS_ONLY = ["sc-knn", "ac-knn", "sc-rp", "ac-rp"]


def row_key(name: str) -> tuple:
    """Sort key putting a row name where Table 5 has it; unknown names go last, alphabetically."""
    if name in FIXED:
        return (FIXED.index(name), 0.0, "")
    for rank, prefix in enumerate(GROUPS, start=len(FIXED)):
        rest = name[len(prefix):] if name.startswith(prefix) else None
        if rest is None:
            continue
        if prefix == "inputs-only-" and rest in INPUTS_ONLY:
            return (rank, float(INPUTS_ONLY.index(rest)), "")
        try:
            return (rank, float(rest), "")
        except ValueError:
            pass
    return (len(FIXED) + len(GROUPS), 0.0, name)


def find_runs(root: Path) -> dict:
    """{(row, weight decay): median_last10_test_error} from either layout."""
    found = {}
    for summary in root.glob("*/*/summary.json"):  # OUT/wd<decay>/<row>/
        if summary.parent.parent.name.startswith("wd"):
            found[(summary.parent.name, summary.parent.parent.name[2:])] = summary
    for summary in root.glob("*/summary.json"):  # OUT/<row>-wd<decay>/
        match = re.fullmatch(r"(.+?)-wd([0-9][0-9.e+-]*)", summary.parent.name)
        if match:
            found[(match[1], match[2])] = summary
    return {key: json.loads(path.read_text())["median_last10_test_error"] for key, path in found.items()}


def table(errors: dict) -> list[str]:
    rows = sorted({row for row, _ in errors}, key=row_key)
    decays = sorted({decay for _, decay in errors}, key=float)
    lines = ["| row | " + " | ".join(f"weight decay {d}" for d in decays) + " |",
             "| --- |" + " ---: |" * len(decays)]
    for row in rows:
        cells = [f"{errors[row, d]:.2f}" if (row, d) in errors else "-" for d in decays]
        lines.append(f"| {row} | " + " | ".join(cells) + " |")
    return lines


def main(argv: list[str]) -> int:
    if len(argv) != 1 or not Path(argv[0]).is_dir():
        print("usage: table5_summary.py OUT_DIR (the folder given to table5-digits.sh)", file=sys.stderr)
        return 2
    errors = find_runs(Path(argv[0]))
    if not errors:
        print(f"no finished runs (summary.json) under {argv[0]}", file=sys.stderr)
        return 1
    print("\n".join(table(errors)))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
