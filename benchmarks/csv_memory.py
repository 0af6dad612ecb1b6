"""Peak memory of loading a numeric CSV table through `csv:PATH` (issue 21, item 9).

Writes a synthetic table shaped like Fashion-MNIST as a CSV (N rows of C columns: C-1 integer pixels 0-255
and a last `label` column of 10 classes) to a temporary directory, loads it with
`mixup_cli.data.load_dataset("csv:PATH", "train")` in a fresh Python process, and prints that process's peak
resident memory (resource.getrusage), the same for a process that only imports the package and
scikit-learn's splitter (which the first load imports), and the difference per million cells of the
table. A measurement, not a test:

    ./run python benchmarks/csv_memory.py                 # 20,000 x 785
    ./run python benchmarks/csv_memory.py --rows 70000    # Fashion-MNIST's size
"""
from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

CHILD = """
import resource, sys, time
import mixup_cli.data
import sklearn.model_selection  # the stratified split's, imported by the first load: not the table's memory
if sys.argv[1] != "-":
    start = time.perf_counter()
    split = mixup_cli.data.load_dataset("csv:" + sys.argv[1], "train")
    print("seconds", time.perf_counter() - start)
    print("train_rows", len(split))
print("peak_kb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
"""


def write_table(path: Path, rows: int, columns: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    header = ",".join([f"pixel{i}" for i in range(1, columns)] + ["label"])
    with open(path, "w") as handle:
        handle.write(header + "\n")
        for start in range(0, rows, 5000):
            n = min(5000, rows - start)
            block = np.concatenate([rng.integers(0, 256, size=(n, columns - 1)),
                                    (np.arange(start, start + n) % 10)[:, None]], axis=1)
            np.savetxt(handle, block, fmt="%d", delimiter=",")


def child(argument: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, "-c", CHILD, argument], capture_output=True, text=True, check=True)
    return {key: float(value) for key, value in (line.split() for line in done.stdout.splitlines())}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--columns", type=int, default=785, help="including the label column")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        write_table(path, args.rows, args.columns)
        size_mb = path.stat().st_size / 1e6
        baseline = child("-")
        loaded = child(str(path))
    cells = args.rows * args.columns
    peak_mb, base_mb = loaded["peak_kb"] / 1024, baseline["peak_kb"] / 1024
    print(f"table: {args.rows:,} rows x {args.columns} columns = {cells / 1e6:.2f} M cells, {size_mb:.1f} MB of CSV, "
          f"{cells * 4 / 2**20:.1f} MiB as float32")
    print(f"load csv: train split ({int(loaded['train_rows']):,} rows) in {loaded['seconds']:.1f} s")
    print(f"peak RSS: {peak_mb:.0f} MiB (import only: {base_mb:.0f} MiB; loading added {peak_mb - base_mb:.0f} MiB)")
    print(f"per million cells: {(peak_mb - base_mb) / (cells / 1e6):.1f} MiB above the import baseline")


if __name__ == "__main__":
    main()
