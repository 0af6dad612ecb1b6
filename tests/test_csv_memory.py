"""The block-by-block CSV reader (issue 21, item 9) gives exactly the arrays of a cell-by-cell parse, whatever
the block size: smaller than the file, with a last partial block, one row per block, or the whole file. Memory
itself is measured by benchmarks/csv_memory.py, not asserted here."""
import csv

import numpy as np
import pytest

from mixup_cli.data import get_dataset
from mixup_cli.data import tables


def write_table(path, rows=23):
    """Label column in the middle, quoted and spaced cells, a blank line, negative and exponent numbers."""
    rng = np.random.default_rng(1)
    lines = ["a, b ,label,c,d"]
    for i in range(rows):
        a, b, c, d = rng.normal(0, 1e3, 4)
        lines.append(f'{a:.7g}, {b:.9e} ,{["x", "y", "z"][i % 3]},"{c:.5f}",{int(d)}')
        if i == 10:
            lines.append("")
    path.write_text("\n".join(lines) + "\n", encoding="utf-8-sig")


def reference_parse(path):
    """The simplest parse: csv module, float(cell) per cell, into float32; classes sorted."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        rows = [row for row in csv.reader(handle) if row and any(cell.strip() for cell in row)]
    header = [h.strip() for h in rows[0]]
    at = header.index("label")
    features = np.array([[float(c) for j, c in enumerate(row) if j != at] for row in rows[1:]], dtype=np.float64)
    raw = [row[at].strip() for row in rows[1:]]
    classes = sorted(set(raw))
    return features.astype(np.float32), np.array([classes.index(v) for v in raw], dtype=np.int64), tuple(classes)


@pytest.mark.parametrize("chunk_rows", [1, 4, 7, 22, 23, 1000])
def test_block_reader_matches_a_cell_by_cell_parse(tmp_path, chunk_rows):
    path = tmp_path / "table.csv"
    write_table(path)
    features, labels, classes = tables.read_csv_table(str(path), chunk_rows=chunk_rows)
    ref_features, ref_labels, ref_classes = reference_parse(path)
    assert features.dtype == np.float32 and features.shape == (23, 4) and features.flags.c_contiguous
    assert np.array_equal(features, ref_features) and np.array_equal(labels, ref_labels) and classes == ref_classes


@pytest.mark.parametrize("chunk_rows", [3, 1000])
def test_block_reader_names_the_bad_cell_in_any_block(tmp_path, chunk_rows):
    path = tmp_path / "table.csv"
    write_table(path)
    lines = path.read_text(encoding="utf-8-sig").splitlines()
    lines[9] = lines[9].split(",", 1)[0] + ",  ,x,1,2"  # line 10: an empty cell in column 'b'
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(Exception, match=r"line 10, column 'b': '' is not a number"):
        tables.read_csv_table(str(path), chunk_rows=chunk_rows)


def test_statistics_in_blocks_match_a_float64_copy(tmp_path, monkeypatch):
    path = tmp_path / "table.csv"
    write_table(path, rows=60)
    monkeypatch.setattr(tables, "STATISTICS_BLOCK_ROWS", 7)
    spec = get_dataset(f"csv:{path}")
    features, labels, _ = reference_parse(path)
    train = features[tables.split_indices(labels)["train"]].astype(np.float64)
    assert np.allclose(spec.mean, train.mean(0), rtol=1e-12, atol=0)
    assert np.allclose(spec.std, train.std(0), rtol=1e-9, atol=0)
    assert np.array_equal(spec.load("train").inputs.numpy(), features[tables.split_indices(labels)["train"]])
