"""Tabular datasets for §3.6: three UCI sets that ship with scikit-learn, and `csv:PATH` for any
other (the paper's Abalone, Arcene, Arrhythmia, HTRU2, Phishing, from their UCI files).

Every table is split once into 80% train / 20% test, stratified by class with a fixed seed (0),
so a split is the same on every machine. Features are standardized with the *training* split's
per-feature mean and std, carried by the model (models/base.py: Normalized) like image
normalization, so a checkpoint takes raw feature rows.

`csv:PATH`: a CSV file with a header row. The label column is the one named `label`, or else the
last column; labels may be numbers or strings (classes are their sorted distinct values). Every
other column must be numeric with no missing values.
"""
from __future__ import annotations

import csv
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch

from ..errors import ConfigError
from . import DATASET_FAMILIES, DatasetSpec, register_dataset
from .tensor_split import TensorSplit

SPLIT_SEED = 0
TEST_FRACTION = 0.2
LABEL_COLUMN = "label"


def split_indices(labels: np.ndarray) -> dict[str, np.ndarray]:
    from sklearn.model_selection import train_test_split

    counts = np.bincount(labels)
    if len(counts) < 2 or counts.min() < 2:
        raise ConfigError("a table needs at least 2 classes with at least 2 rows each for a stratified split")
    n_test = max(int(round(TEST_FRACTION * len(labels))), len(counts))
    train, test = train_test_split(np.arange(len(labels)), test_size=n_test, stratify=labels, random_state=SPLIT_SEED)
    return {"train": np.sort(train), "test": np.sort(test)}


def _split(features: np.ndarray, labels: np.ndarray, split: str) -> TensorSplit:
    index = split_indices(labels)[split]
    inputs = features[index].astype(np.float32, copy=False)  # indexing already copied: no second copy
    return TensorSplit(torch.from_numpy(inputs), torch.from_numpy(labels[index]))


STATISTICS_BLOCK_ROWS = 4096


def training_statistics(features: np.ndarray, labels: np.ndarray) -> tuple[tuple[float, ...], tuple[float, ...]]:
    """Per-feature mean and (population) std of the training split, summed in float64 a block of rows at a
    time, so the float32 table is never copied whole into float64."""
    train = split_indices(labels)["train"]
    blocks = [train[i:i + STATISTICS_BLOCK_ROWS] for i in range(0, len(train), STATISTICS_BLOCK_ROWS)]
    total = np.zeros(features.shape[1], dtype=np.float64)
    for rows in blocks:
        total += features[rows].sum(axis=0, dtype=np.float64)
    mean = total / len(train)
    squares = np.zeros_like(mean)
    for rows in blocks:
        squares += np.square(features[rows].astype(np.float64) - mean).sum(axis=0)
    std = np.sqrt(squares / len(train))
    std[std == 0] = 1.0  # a constant column stays as it is
    return tuple(float(v) for v in mean), tuple(float(v) for v in std)


# ---------------------------------------------------------------------------------------------
# scikit-learn's bundled UCI tables.

@lru_cache(maxsize=3)
def _sklearn_table(loader_name: str) -> tuple[np.ndarray, np.ndarray]:
    import sklearn.datasets

    bunch = getattr(sklearn.datasets, loader_name)()
    return bunch.data.astype(np.float32), bunch.target.astype(np.int64)


def _sklearn_loader(loader_name: str):
    def load(split: str, data_dir, augment: bool) -> TensorSplit:
        return _split(*_sklearn_table(loader_name), split)

    return load


# (name, scikit-learn loader, classes, training-split mean, training-split std); the statistics
# are those of the fixed split above, written out so listing datasets never loads scikit-learn
# (tests/test_data_formats.py recomputes them).
SKLEARN_TABLES = {
    "iris": ("load_iris", 3,
             (5.8575, 3.04917, 3.75917, 1.2075),
             (0.851436, 0.445158, 1.7808, 0.763671)),
    "wine": ("load_wine", 3,
             (13.0221, 2.33577, 2.37768, 19.6789, 99.0141, 2.29556, 2.0293, 0.365563, 1.59852, 5.01528, 0.95307,
              2.61359, 750.915),
             (0.814781, 1.12964, 0.272285, 3.41675, 13.5231, 0.614226, 1.00583, 0.120477, 0.581861, 2.32615,
              0.217686, 0.699526, 324.104)),
    "breast-cancer": ("load_breast_cancer", 2,
                      (14.1407, 19.2288, 92.0493, 657.659, 0.0964813, 0.104119, 0.0879233, 0.0491028, 0.181072,
                       0.0627191, 0.404835, 1.21422, 2.87617, 40.6882, 0.00708365, 0.0253229, 0.0310979, 0.011803,
                       0.0205469, 0.0037421, 16.2773, 25.5918, 107.365, 883.72, 0.132465, 0.254187, 0.269816,
                       0.114925, 0.289765, 0.0839525),
                      (3.59689, 4.35313, 24.7869, 362.721, 0.0138771, 0.052037, 0.0769001, 0.0388787, 0.0270682,
                       0.00697519, 0.284997, 0.56452, 2.10186, 47.7232, 0.00308004, 0.0171434, 0.0258836,
                       0.00603902, 0.00833957, 0.00227295, 4.91205, 6.21601, 34.1858, 584.499, 0.0227265,
                       0.155446, 0.203356, 0.066569, 0.0605975, 0.0177111)),
}

for _name, (_loader_name, _classes, _mean, _std) in SKLEARN_TABLES.items():
    register_dataset(DatasetSpec(
        name=_name, num_classes=_classes, input_shape=(len(_mean),), mean=_mean, std=_std, default_model="mlp",
        loader=_sklearn_loader(_loader_name),
        description=f"UCI {_name}, {len(_mean)} features, {_classes} classes, embedded",
    ))


# ---------------------------------------------------------------------------------------------
# csv:PATH

CHUNK_CELLS = 1 << 18  # cells parsed per block: about 15 MB of Python strings at a time, whatever the file


@lru_cache(maxsize=8)
def _read_csv(path: str, mtime_ns: int, size: int) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """(features float32 N x F, labels int64, class names); cached per file version."""
    return read_csv_table(path)


def read_csv_table(path: str, chunk_rows: int | None = None) -> tuple[np.ndarray, np.ndarray, tuple[str, ...]]:
    """Parse a CSV table block by block straight into one float32 array (issue 21, item 9).

    The rows are read with the csv module a block of `chunk_rows` rows at a time (by default about 260,000
    cells), each block is converted to float32 at once, and written into an array sized from the file's line
    count, so the peak is the float32 table plus one block, not a Python string per cell. Values are those of
    float(cell) rounded to float32, as a cell-by-cell parse gives."""
    try:
        with open(path, newline="", encoding="utf-8-sig") as handle:
            rows = (row for row in csv.reader(handle) if row and any(cell.strip() for cell in row))
            header = [h.strip() for h in next(rows, [])]
            if not header:
                raise ConfigError(f"CSV '{path}' needs a header row and data rows; it has 0 row(s)")
            label_at = header.index(LABEL_COLUMN) if LABEL_COLUMN in header else len(header) - 1
            names = header[:label_at] + header[label_at + 1:]
            width = len(names)
            chunk_rows = chunk_rows or max(1, CHUNK_CELLS // max(width, 1))
            features = np.empty((max(_line_count(path) - 1, 0), width), dtype=np.float32)
            raw_labels: list[str] = []
            block: list[list[str]] = []
            filled = 0
            for r, row in enumerate(rows, start=2):
                if len(row) != len(header):
                    raise ConfigError(f"CSV '{path}' line {r} has {len(row)} cells, the header has {len(header)}")
                raw_labels.append(row[label_at].strip())
                del row[label_at]
                block.append(row)
                if len(block) == chunk_rows:
                    features = _store_block(features, filled, block, path, names, first_line=filled + 2)
                    filled += len(block)
                    block = []
            if block:
                features = _store_block(features, filled, block, path, names, first_line=filled + 2)
                filled += len(block)
    except UnicodeDecodeError:
        raise ConfigError(f"CSV '{path}' is not UTF-8 text ({_first_non_utf8(path)}, as latin-1 or Windows files "
                          f"have); save it as UTF-8 (e.g. iconv -f latin1 -t utf-8 in.csv > out.csv) and "
                          f"retry") from None
    if filled == 0:
        raise ConfigError(f"CSV '{path}' needs a header row and data rows; it has 1 row(s)")
    if len(header) < 2:
        raise ConfigError(f"CSV '{path}' needs at least one feature column besides the label column")
    if filled < len(features):  # blank lines (or quoted line breaks) made the line count an overestimate
        features = features[:filled].copy()
    if not np.isfinite(features).all():
        raise ConfigError(f"CSV '{path}' has NaN or infinite feature values; fill or drop those rows")
    classes = _sorted_classes(raw_labels)
    index = {name: i for i, name in enumerate(classes)}
    return features, np.array([index[v] for v in raw_labels], dtype=np.int64), tuple(classes)


def _store_block(features: np.ndarray, at: int, block: list[list[str]], path: str, names: list[str],
                 first_line: int) -> np.ndarray:
    """Convert one block of feature cells to float32 into features[at:]; a bad cell gets the one-line error
    naming its line and column."""
    try:
        values = np.array(block, dtype=np.float64)  # float(cell) for each cell, surrounding spaces allowed
    except ValueError:
        values = None
    if values is None or values.shape != (len(block), len(names)):
        for r, row in enumerate(block, start=first_line):
            for name, cell in zip(names, row):
                try:
                    float(cell)
                except ValueError:
                    raise ConfigError(f"CSV '{path}' line {r}, column '{name}': {cell.strip()!r} is not a number "
                                      f"(features must be numeric and complete)") from None
        values = np.array([[float(cell) for cell in row] for row in block], dtype=np.float64).reshape(
            len(block), len(names))
    if at + len(block) > len(features):  # only if the line count was short; never for a plain file
        grown = np.empty((max(2 * len(features), at + len(block)), features.shape[1]), dtype=np.float32)
        grown[:at] = features[:at]
        features = grown
    features[at:at + len(block)] = values  # float64 -> float32, rounded as float32(float(cell))
    return features


def _line_count(path: str) -> int:
    """Newlines in the file, plus one for a last line without one: an upper bound on its rows."""
    count, last = 0, b"\n"
    with open(path, "rb") as handle:
        while chunk := handle.read(1 << 20):
            count += chunk.count(b"\n")
            last = chunk[-1:]
    return count + (last != b"\n")


def _first_non_utf8(path: str) -> str:
    with open(path, "rb") as handle:
        for number, raw in enumerate(handle, start=1):
            try:
                raw.decode("utf-8")
            except UnicodeDecodeError as exc:
                return f"byte {raw[exc.start:exc.start + 1]!r} on line {number}"
    return "an incomplete character at the end"


def _sorted_classes(values: list[str]) -> list[str]:
    """Distinct labels, numerically sorted when they are all numbers (so '10' follows '9')."""
    distinct = set(values)
    try:
        return sorted(distinct, key=float)
    except ValueError:
        return sorted(distinct)


def csv_table(argument: str) -> DatasetSpec:
    path = Path(argument).expanduser()
    if not argument or not path.is_file():
        raise ConfigError(f"csv dataset: file '{argument}' does not exist; use --dataset csv:PATH with a CSV file "
                          f"(header row; label column '{LABEL_COLUMN}' or the last column)")
    stat = path.stat()
    features, labels, classes = _read_csv(str(path.resolve()), stat.st_mtime_ns, stat.st_size)
    mean, std = training_statistics(features, labels)

    def load(split: str, data_dir, augment: bool) -> TensorSplit:
        return _split(features, labels, split)

    return DatasetSpec(
        name=f"csv:{path.resolve()}", num_classes=len(classes), input_shape=(features.shape[1],), mean=mean, std=std,
        default_model="mlp", loader=load,
        description=f"CSV table {path.name}: {len(labels)} rows, {features.shape[1]} features, {len(classes)} classes",
    )


DATASET_FAMILIES["csv"] = csv_table
