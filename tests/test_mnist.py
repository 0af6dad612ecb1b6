"""The MNIST family (mnist, fashion-mnist, kmnist) from idx files written here in the real format:
both folder layouts, both naming styles, gzipped or not; one epoch of training and an eval through
the CLI; each kind of bad file refused in one line that names it; --download wired offline; and,
marked slow, the real Debian Fashion-MNIST files when they are installed."""
from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest
import torch

from mixup_cli.data import get_dataset, load_dataset
from mixup_cli.data import mnist
from mixup_cli.errors import ConfigError

DEBIAN = Path("/usr/share/datasets/fashion-mnist")
FOLDERS = {"mnist": "MNIST", "fashion-mnist": "FashionMNIST", "kmnist": "KMNIST"}


@pytest.fixture(autouse=True)
def no_system_copy(monkeypatch, tmp_path):
    """Every test sees no Debian copy and no ./data, whatever this machine has installed."""
    monkeypatch.setitem(mnist.SYSTEM_DIRS, "fashion-mnist", ("dataset-fashion-mnist", tmp_path / "no-debian"))
    monkeypatch.chdir(tmp_path)


def idx_bytes(array: np.ndarray) -> bytes:
    """An idx file of unsigned bytes: magic 0x0000 0x08 ndim, big-endian int32 dims, then the data."""
    header = struct.pack(">I", 0x0800 + array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    return header + array.astype(np.uint8).tobytes()


def write_file(path: Path, data: bytes, gz: bool) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(gzip.compress(data) if gz else data)
    return path


def file_name(stem: str, idx: str, dotted: bool, gz: bool) -> str:
    return f"{stem}{'.' if dotted else '-'}{idx}-ubyte{'.gz' if gz else ''}"


def make_split(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Learnable images: class c is noise around grey level 25c (a model that learns anything learns this)."""
    rng = np.random.default_rng(seed)
    labels = np.arange(n) % 10
    rng.shuffle(labels)
    images = 25 * labels[:, None, None] + rng.integers(0, 20, size=(n, 28, 28))
    return images.astype(np.uint8), labels.astype(np.uint8)


def write_set(folder: Path, gz: bool = True, dotted: bool = False, sizes=(40, 20), seed: int = 0) -> dict:
    """The four files of a set in `folder`; returns {split: (images, labels)}."""
    written = {}
    for (split, (images_stem, labels_stem)), n in zip(mnist.STEMS.items(), sizes):
        images, labels = make_split(n, seed + len(written))
        write_file(folder / file_name(images_stem, "idx3", dotted, gz), idx_bytes(images), gz)
        write_file(folder / file_name(labels_stem, "idx1", dotted, gz), idx_bytes(labels), gz)
        written[split] = (images, labels)
    return written


def assert_loaded(name: str, data_dir, written: dict) -> None:
    for split, (images, labels) in written.items():
        loaded = load_dataset(name, split, None if data_dir is None else str(data_dir))
        assert loaded.inputs.dtype == torch.uint8 and loaded.inputs.shape == (len(images), 1, 28, 28)
        assert torch.equal(loaded.inputs[:, 0], torch.from_numpy(images))
        assert torch.equal(loaded.labels, torch.from_numpy(labels.astype(np.int64)))
        image, label = loaded[3]  # scaled to [0, 1] on the way out
        assert image[0, 5, 7].item() == pytest.approx(images[3, 5, 7] / 255.0) and label.item() == labels[3]


# ---------------------------------------------------------------------------------------------
# Where the files are found

@pytest.mark.parametrize("name", sorted(FOLDERS))
@pytest.mark.parametrize("layout", ["torchvision", "plain"])
@pytest.mark.parametrize("gz", [True, False])
@pytest.mark.parametrize("dotted", [False, True])
def test_loads_from_both_layouts_and_naming_styles(tmp_path, name, layout, gz, dotted):
    folder = tmp_path / "d" / FOLDERS[name] / "raw" if layout == "torchvision" else tmp_path / "d"
    written = write_set(folder, gz=gz, dotted=dotted)
    assert_loaded(name, tmp_path / "d", written)


def test_gzip_is_told_by_content_not_name(tmp_path):
    """A gzipped file without .gz and a plain one named .gz both load (copies get renamed and recompressed)."""
    written = write_set(tmp_path, gz=False)
    for path in list(tmp_path.iterdir()):
        if path.name.startswith("train-"):
            path.rename(path.with_name(path.name + ".gz"))  # plain bytes under a .gz name
        else:
            path.write_bytes(gzip.compress(path.read_bytes()))  # gzip under a plain name
    assert_loaded("mnist", tmp_path, written)


def test_torchvision_layout_is_read_before_the_plain_folder(tmp_path):
    written = write_set(tmp_path / "KMNIST" / "raw", seed=0)
    write_set(tmp_path, seed=7)
    assert_loaded("kmnist", tmp_path, written)


def test_debian_location_is_found_without_data_dir_and_never_overrides_one(tmp_path, monkeypatch):
    written = write_set(tmp_path / "debian")
    monkeypatch.setitem(mnist.SYSTEM_DIRS, "fashion-mnist", ("dataset-fashion-mnist", tmp_path / "debian"))
    assert_loaded("fashion-mnist", None, written)
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="has no train files"):
        load_dataset("fashion-mnist", "train", str(tmp_path / "empty"))
    # A spoilt system file is fixed by reinstalling the package, not by --download.
    (tmp_path / "debian" / "t10k-labels-idx1-ubyte.gz").write_bytes(b"\x1f\x8b\x08 cut short")
    with pytest.raises(ConfigError, match=r"t10k-labels.*apt-get install --reinstall dataset-fashion-mnist"):
        load_dataset("fashion-mnist", "test")
    # mnist has no system copy to fall back on
    with pytest.raises(ConfigError, match="has no train files"):
        load_dataset("mnist", "train")


def test_specs_describe_28x28_grey_ten_classes():
    for name in FOLDERS:
        spec = get_dataset(name)
        assert (spec.num_classes, spec.input_shape, spec.pixel_levels) == (10, (1, 28, 28), 255)
        assert spec.default_model == "small-cnn" and spec.download is not None
        assert len(spec.mean) == len(spec.std) == 1 and 0 < spec.mean[0] < 0.5 and 0.2 < spec.std[0] < 0.5


# ---------------------------------------------------------------------------------------------
# Through the CLI

def test_trains_one_epoch_and_evals_the_checkpoint(cli, tmp_path):
    write_set(tmp_path / "data" / "FashionMNIST" / "raw", sizes=(400, 100))
    result = cli("train", "--dataset", "fashion-mnist", "--data-dir", tmp_path / "data", "--epochs", "1",
                 "--batch-size", "16", "--alpha", "0", "--lr", "0.02", "--device", "cpu", "--out", tmp_path / "run",
                 "--json")
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["dataset"] == "fashion-mnist" and summary["model"] == "small-cnn"
    assert summary["test_error"] < 50  # learnable only if labels stayed with their images (chance: 90)
    evaluated = cli("eval", "--ckpt", tmp_path / "run" / "last.pt", "--json")
    assert evaluated.exit_code == 0, evaluated.stderr
    evaluated = evaluated.json()
    assert evaluated["n"] == 100 and evaluated["test_error"] == pytest.approx(summary["test_error"], abs=1e-9)


def train_args(tmp_path, data_dir):
    return ["train", "--dataset", "fashion-mnist", "--data-dir", data_dir, "--epochs", "1", "--device", "cpu",
            "--out", tmp_path / "run"]


def assert_one_line_exit_2(result, *needles):
    assert result.exit_code == 2, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    for needle in needles:
        assert needle in result.stderr, result.stderr


def corrupt_gzip(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[20:40] = bytes(20)  # inside the deflate stream
    path.write_bytes(bytes(data))


BAD_FILES = {
    # case: (file it hits, how to spoil it, what the message says)
    "bad magic": ("train-images-idx3-ubyte.gz",
                  lambda p: p.write_bytes(gzip.compress(b"\x00\x00\x08\x01" + gzip.decompress(p.read_bytes())[4:])),
                  "magic number 0x00000801"),
    "truncated": ("train-images-idx3-ubyte.gz",
                  lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes())[:-100])), "cut or padded"),
    "padded": ("t10k-labels-idx1-ubyte.gz",
               lambda p: p.write_bytes(gzip.compress(gzip.decompress(p.read_bytes()) + b"\x01")), "cut or padded"),
    "count mismatch": ("train-labels-idx1-ubyte.gz",
                       lambda p: p.write_bytes(gzip.compress(idx_bytes(np.zeros(39, np.uint8)))), "39 labels"),
    "label out of range": ("train-labels-idx1-ubyte.gz",
                           lambda p: p.write_bytes(gzip.compress(idx_bytes(np.full(40, 10, np.uint8)))), "label 10"),
    "not 28x28": ("t10k-images-idx3-ubyte.gz",
                  lambda p: p.write_bytes(gzip.compress(idx_bytes(np.zeros((20, 27, 27), np.uint8)))), "27x27"),
    "corrupt gzip": ("train-images-idx3-ubyte.gz", corrupt_gzip, "broken gzip stream"),
    "cut gzip": ("t10k-labels-idx1-ubyte.gz", lambda p: p.write_bytes(p.read_bytes()[:-10]), "broken gzip stream"),
    "header only half there": ("train-labels-idx1-ubyte.gz", lambda p: p.write_bytes(gzip.compress(b"\x00\x00")),
                               "too short for an idx header"),
}


@pytest.mark.parametrize("case", sorted(BAD_FILES))
def test_bad_file_is_one_line_naming_it(cli, tmp_path, case):
    target, spoil, needle = BAD_FILES[case]
    write_set(tmp_path / "d", gz=True)
    spoil(tmp_path / "d" / target)
    result = cli(*train_args(tmp_path, tmp_path / "d"))
    assert_one_line_exit_2(result, needle, target)
    assert not (tmp_path / "run").exists()


def test_missing_files_name_every_way_to_get_them(cli, tmp_path):
    result = cli("train", "--dataset", "fashion-mnist", "--epochs", "1", "--out", tmp_path / "run")
    assert_one_line_exit_2(result, "'data/FashionMNIST/raw'", "--data-dir", "FashionMNIST/raw/",
                           "apt-get install dataset-fashion-mnist", "--download", "train-images-idx3-ubyte")
    (tmp_path / "empty").mkdir()
    result = cli("train", "--dataset", "mnist", "--data-dir", tmp_path / "empty", "--epochs", "1",
                 "--out", tmp_path / "run")
    assert_one_line_exit_2(result, "MNIST/raw/", "--download")
    assert "apt-get" not in result.stderr  # Debian packages Fashion-MNIST only


def test_half_a_split_is_named(cli, tmp_path):
    write_set(tmp_path / "d")
    (tmp_path / "d" / "t10k-labels-idx1-ubyte.gz").unlink()
    result = cli(*train_args(tmp_path, tmp_path / "d"))
    assert_one_line_exit_2(result, "t10k-images-idx3-ubyte.gz", "no t10k-labels-idx1-ubyte")


# ---------------------------------------------------------------------------------------------
# --download, with torchvision's class replaced (no network here)

def fake_torchvision(monkeypatch, fetch):
    import torchvision.datasets

    class FakeFashionMNIST:
        def __init__(self, root, train=True, download=False):
            raw = Path(root) / "FashionMNIST" / "raw"
            raw.mkdir(parents=True, exist_ok=True)  # as torchvision does before fetching
            fetch(raw)

    monkeypatch.setattr(torchvision.datasets, "FashionMNIST", FakeFashionMNIST)


def test_download_fills_torchvision_layout_and_trains(cli, monkeypatch, tmp_path):
    fake_torchvision(monkeypatch, lambda raw: write_set(raw, gz=False))
    result = cli(*train_args(tmp_path, tmp_path / "new"), "--download", "--json")
    assert result.exit_code == 0, result.stderr
    assert (tmp_path / "new" / "FashionMNIST" / "raw" / "train-images-idx3-ubyte").is_file()


@pytest.mark.parametrize("existing", [False, True])
def test_failed_download_leaves_no_folder_it_made(cli, monkeypatch, tmp_path, existing):
    def fail(raw):
        (raw / "train-images-idx3-ubyte.gz").write_bytes(b"\x1f\x8b partial")
        raise RuntimeError("Error downloading train-images-idx3-ubyte.gz:\nTried http://mirror/, got:\n<urlopen error>")

    fake_torchvision(monkeypatch, fail)
    data_dir = tmp_path / "d"
    if existing:
        data_dir.mkdir()
        (data_dir / "keep.txt").write_text("the user's")
    result = cli(*train_args(tmp_path, data_dir), "--download")
    assert result.exit_code == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert "downloading fashion-mnist" in result.stderr and "urlopen error" in result.stderr
    if existing:
        assert sorted(p.name for p in data_dir.iterdir()) == ["keep.txt"]
    else:
        assert not data_dir.exists()


# ---------------------------------------------------------------------------------------------
# The real files, where Debian's dataset-fashion-mnist is installed

@pytest.mark.slow
@pytest.mark.skipif(not DEBIAN.is_dir(), reason="apt-get install dataset-fashion-mnist for the real files")
def test_real_debian_fashion_mnist(monkeypatch):
    monkeypatch.setitem(mnist.SYSTEM_DIRS, "fashion-mnist", ("dataset-fashion-mnist", DEBIAN))
    train, test = load_dataset("fashion-mnist", "train"), load_dataset("fashion-mnist", "test")
    assert train.inputs.shape == (60_000, 1, 28, 28) and test.inputs.shape == (10_000, 1, 28, 28)
    # Fashion-MNIST is balanced: 6,000 and 1,000 of each class.
    assert torch.bincount(train.labels).tolist() == [6_000] * 10
    assert torch.bincount(test.labels).tolist() == [1_000] * 10
    pixels = train.inputs.double() / 255
    spec = get_dataset("fashion-mnist")
    assert pixels.mean().item() == pytest.approx(spec.mean[0], abs=5e-5)
    assert pixels.std().item() == pytest.approx(spec.std[0], abs=5e-5)
