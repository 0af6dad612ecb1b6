"""Each on-disk dataset format, written tiny and for real, loaded through the real code: CIFAR
pickle batches, an ImageNet folder tree, a Speech Commands folder of WAV files, a CSV table; and
one epoch of `mixup train` on each through the CLI."""
from __future__ import annotations

import pickle
import wave

import numpy as np
import pytest
import torch

from mixup_cli.data import get_dataset, load_dataset



def train_one_epoch(cli, tmp_path, dataset, data_dir=None, *extra):
    args = ["train", "--dataset", dataset, "--epochs", "1", "--batch-size", "4", "--device", "cpu",
            "--out", tmp_path / "run", "--json", *extra]
    if data_dir is not None:
        args += ["--data-dir", data_dir]
    result = cli(*args)
    assert result.exit_code == 0, result.stderr
    summary = result.json()
    assert summary["epochs"] == 1 and 0 <= summary["test_error"] <= 100
    return summary


# ---------------------------------------------------------------------------------------------
# CIFAR: torchvision's pickle batches

def write_cifar(root, name="cifar10", per_file=6, seed=0):
    rng = np.random.default_rng(seed)
    if name == "cifar10":
        folder = root / "cifar-10-batches-py"
        files, key, classes = [f"data_batch_{i}" for i in range(1, 6)] + ["test_batch"], b"labels", 10
        meta = ("batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)], b"num_vis": 3072})
    else:
        folder = root / "cifar-100-python"
        files, key, classes = ["train", "test"], b"fine_labels", 100
        meta = ("meta", {b"fine_label_names": [f"f{i}".encode() for i in range(100)],
                         b"coarse_label_names": [f"c{i}".encode() for i in range(20)]})
    folder.mkdir(parents=True)
    written = {}
    for f in files:
        data = rng.integers(0, 256, size=(per_file, 3072), dtype=np.uint8)
        labels = rng.integers(0, classes, size=per_file).tolist()
        batch = {b"batch_label": f.encode(), b"data": data, key: labels, b"filenames": [b"x.png"] * per_file}
        if name == "cifar100":
            batch[b"coarse_labels"] = [label // 5 for label in labels]
        (folder / f).write_bytes(pickle.dumps(batch, protocol=2))
        written[f] = (data, labels)
    (folder / meta[0]).write_bytes(pickle.dumps(meta[1], protocol=2))
    return written


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_batches_load_channel_major(tmp_path, name):
    written = write_cifar(tmp_path, name)
    train = load_dataset(name, "train", str(tmp_path))
    test = load_dataset(name, "test", str(tmp_path))
    train_files = [f for f in written if f not in ("test_batch", "test")]
    assert len(train) == 6 * len(train_files) and len(test) == 6
    assert train.inputs.dtype == torch.uint8 and train.inputs.shape[1:] == (3, 32, 32)
    data, labels = written[train_files[-1]]
    image, label = train[len(train) - 6 + 2]  # third image of the last training file
    # b'data' rows are 1024 red, then 1024 green, then 1024 blue values, each row-major.
    c, y, x = 2, 5, 17
    assert image[c, y, x].item() == pytest.approx(data[2, c * 1024 + y * 32 + x] / 255.0)
    assert label.item() == labels[2]
    assert 0.0 <= image.min() and image.max() <= 1.0
    assert get_dataset(name).augment == "crop-flip" and get_dataset(name).pixel_levels == 255


def test_cifar_trains_one_epoch(cli, tmp_path):
    write_cifar(tmp_path / "data", per_file=4)
    summary = train_one_epoch(cli, tmp_path, "cifar10", tmp_path / "data", "--model", "small-cnn")
    assert summary["dataset"] == "cifar10"


def test_cifar_missing_files_name_them(cli, tmp_path):
    result = cli("train", "--dataset", "cifar100", "--data-dir", tmp_path, "--epochs", "1", "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert "cifar-100-python/train" in result.stderr and "--download" in result.stderr
    assert "Traceback" not in result.stderr


def test_cifar_damaged_batch_is_a_config_error(tmp_path):
    from mixup_cli.errors import ConfigError

    write_cifar(tmp_path)
    (tmp_path / "cifar-10-batches-py" / "test_batch").write_bytes(pickle.dumps({b"data": np.zeros((2, 3072))}))
    with pytest.raises(ConfigError, match="lacks the keys"):
        load_dataset("cifar10", "test", str(tmp_path))


def test_download_refused_where_none_exists(cli, tmp_path):
    result = cli("train", "--dataset", "iris", "--download", "--epochs", "1", "--out", tmp_path / "r")
    assert result.exit_code == 2 and "no download" in result.stderr


# ---------------------------------------------------------------------------------------------
# ImageNet: train/ and val/ class folders of image files

def write_imagenet(root, classes=("n01440764", "n01443537", "n01484850"), per_class=3, val_classes=None):
    from PIL import Image

    rng = np.random.default_rng(0)
    for split, names, count in (("train", classes, per_class), ("val", val_classes or classes, 1)):
        for index, wnid in enumerate(names):
            folder = root / split / wnid
            folder.mkdir(parents=True)
            for i in range(count):
                pixels = rng.integers(0, 256, size=(30 + 7 * i, 40, 3), dtype=np.uint8)
                suffix = "png" if (index + i) % 2 else "JPEG"
                Image.fromarray(pixels).save(folder / f"{wnid}_{i}.{suffix}")


def test_imagenet_folders_load_with_train_and_eval_transforms(tmp_path):
    write_imagenet(tmp_path)
    train = load_dataset("imagenet", "train", str(tmp_path), augment=True)
    val = load_dataset("imagenet", "test", str(tmp_path))
    assert len(train) == 9 and len(val) == 3
    image, label = train[4]
    assert image.shape == (3, 224, 224) and 0.0 <= image.min() and image.max() <= 1.0
    assert label == 1  # sorted class folders: n01443537 is class 1
    assert [val[i][1] for i in range(3)] == [0, 1, 2]
    assert val[0][0].shape == (3, 224, 224)
    # Evaluation is deterministic (resize 256, center crop 224); training draws random crops.
    assert torch.equal(val[0][0], val[0][0])
    torch.manual_seed(0)
    a = train[0][0]
    torch.manual_seed(1)
    assert not torch.equal(a, train[0][0])


def test_imagenet_val_classes_follow_train(tmp_path):
    write_imagenet(tmp_path, val_classes=("n01443537",))
    assert load_dataset("imagenet", "test", str(tmp_path))[0][1] == 1  # not 0: train's index


def test_imagenet_unknown_val_class_is_refused(tmp_path):
    from mixup_cli.errors import ConfigError

    write_imagenet(tmp_path, val_classes=("n09999999",))
    with pytest.raises(ConfigError, match="not in train"):
        load_dataset("imagenet", "test", str(tmp_path))


def test_imagenet_missing_folders(tmp_path):
    from mixup_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="train/<class>"):
        load_dataset("imagenet", "train", str(tmp_path))


def test_imagenet_trains_one_epoch(cli, tmp_path):
    write_imagenet(tmp_path / "data", per_class=2)
    config = tmp_path / "tiny.yaml"
    config.write_text("model: small-cnn\nmodel_options: {width: 4}\neval_batch_size: 4\n")
    summary = train_one_epoch(cli, tmp_path, "imagenet", tmp_path / "data", "--config", config)
    assert summary["test_top5_error"] is not None


# ---------------------------------------------------------------------------------------------
# Speech Commands v0.01: word folders of 16-bit WAV files and the two list files

def write_wav(path, samples, rate=16_000, width=2):
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as handle:
        handle.setnchannels(1)
        handle.setsampwidth(width)
        handle.setframerate(rate)
        handle.writeframes(np.asarray(samples, dtype="<i2" if width == 2 else np.uint8).tobytes())


def write_speech(root, words=("yes", "no", "up"), short=8_000):
    from mixup_cli.data.speech_commands import CLASSES

    rng = np.random.default_rng(0)
    for word in CLASSES:
        (root / word).mkdir(parents=True)
    val, test = [], []
    for word in words:
        for i in range(4):
            name = f"{word}/{i:08x}_nohash_0.wav"
            length = short if i == 0 else 16_000
            write_wav(root / name, rng.normal(0, 3000, size=length).clip(-32768, 32767))
            if i == 1:
                val.append(name)
            elif i == 2:
                test.append(name)
    (root / "_background_noise_").mkdir()
    write_wav(root / "_background_noise_" / "noise.wav", np.zeros(32_000))
    (root / "validation_list.txt").write_text("\n".join(val) + "\n")
    (root / "testing_list.txt").write_text("\n".join(test) + "\n")


def test_read_wav_decodes_16_bit_pcm(tmp_path):
    from mixup_cli.data.speech_commands import read_wav

    samples = np.array([0, 1, -1, 32767, -32768, 1234], dtype=np.int16)
    write_wav(tmp_path / "a.wav", samples)
    assert np.array_equal(read_wav(tmp_path / "a.wav"), samples.astype(np.float32) / 32768)


def test_read_wav_refuses_other_encodings(tmp_path):
    from mixup_cli.data.speech_commands import read_wav
    from mixup_cli.errors import ConfigError

    write_wav(tmp_path / "b.wav", np.full(100, 128), width=1)
    with pytest.raises(ConfigError, match="not 16-bit mono 16000 Hz"):
        read_wav(tmp_path / "b.wav")


def test_speech_commands_spectrograms_and_splits(tmp_path):
    from mixup_cli.data.speech_commands import CLASSES

    write_speech(tmp_path)
    train = load_dataset("speechcommands", "train", str(tmp_path))
    test = load_dataset("speechcommands", "test", str(tmp_path))
    validation = load_dataset("speechcommands", "validation", str(tmp_path))
    assert len(train) == 6 and len(validation) == 3 and len(test) == 3  # 4 clips per word: 2 train, 1 each
    # the validation clips are the list's: yes/no/up number 1, none of them in training or test
    assert sorted(validation.labels.tolist()) == sorted(CLASSES.index(w) for w in ("yes", "no", "up"))
    assert not any(torch.equal(v, t) for v in validation.inputs for t in torch.cat([train.inputs, test.inputs]))
    assert train.inputs.shape == (6, 1, 160, 101)
    assert sorted(set(train.labels.tolist())) == sorted(CLASSES.index(w) for w in ("yes", "no", "up"))
    full = train.inputs[1].float()  # yes/00000003 (a full one-second clip)
    assert abs(full.mean().item()) < 1e-2 and abs(full.std().item() - 1) < 1e-2
    short = train.inputs[train.labels.tolist().index(CLASSES.index("no"))].float()  # no/00000000: half a second
    assert torch.count_nonzero(short[..., 51:]) == 0  # zero-padded after its 51 frames of audio
    valid = short[..., :51]
    assert abs(valid.mean().item()) < 1e-2 and abs(valid.std().item() - 1) < 2e-2
    # Cached: the second load reads the .pt file and gives the same tensors.
    assert len(list((tmp_path / ".mixup-cache").glob("speechcommands-train-*.pt"))) == 1
    again = load_dataset("speechcommands", "train", str(tmp_path))
    assert torch.equal(again.inputs, train.inputs) and torch.equal(again.labels, train.labels)


def test_speech_commands_missing_lists(tmp_path):
    from mixup_cli.errors import ConfigError

    with pytest.raises(ConfigError, match="validation_list.txt"):
        load_dataset("speechcommands", "train", str(tmp_path))


def test_speech_commands_trains_one_epoch_and_reports_validation_and_test(cli, tmp_path):
    """Table 4 reports validation and test error: the trainer evaluates both splits every epoch."""
    write_speech(tmp_path / "data" / "speech_commands_v0.01")
    config = tmp_path / "tiny.yaml"
    config.write_text("model: small-cnn\nmodel_options: {width: 4}\n")
    summary = train_one_epoch(cli, tmp_path, "speechcommands", tmp_path / "data", "--config", config)
    assert 0 <= summary["validation_error"] <= 100 and summary["best_validation_epoch"] == 1
    record = (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()[0]
    assert '"validation_error"' in record and '"test_error"' in record
    evaluated = cli("eval", "--ckpt", tmp_path / "run", "--split", "validation", "--json").json()
    assert evaluated["split"] == "validation" and evaluated["n"] == 3
    assert evaluated["validation_error"] == pytest.approx(summary["validation_error"])
    assert evaluated["last_validation_error"] == pytest.approx(summary["validation_error"])


def test_validation_split_refused_where_the_dataset_has_none(cli, digits_runs):
    result = cli("eval", "--ckpt", digits_runs["erm"], "--split", "validation")
    assert result.exit_code == 2
    assert "dataset 'digits' has no split 'validation'" in result.stderr and "train, test" in result.stderr


# ---------------------------------------------------------------------------------------------
# Tables: scikit-learn's and csv:PATH

def write_csv(path, label_column=True, rows=30):
    rng = np.random.default_rng(0)
    header = "width,height,label" if label_column else "width,code,height,class"
    lines = [header]
    for i in range(rows):
        kind = ["cat", "dog", "emu"][i % 3]
        w, h = rng.normal(10 * (i % 3), 1), rng.normal(100, 5)
        lines.append(f"{w:.3f},{h:.3f},{kind}" if label_column else f"{w:.3f},{kind},{h:.3f},{i % 3}")
    path.write_text("\n".join(lines) + "\n")


def test_csv_label_column_and_training_statistics(tmp_path):
    path = tmp_path / "animals.csv"
    write_csv(path)
    spec = get_dataset(f"csv:{path}")
    assert spec.num_classes == 3 and spec.input_shape == (2,) and spec.default_model == "mlp"
    train, test = spec.load("train"), spec.load("test")
    assert len(train) == 24 and len(test) == 6
    assert sorted(test.labels.tolist()) == [0, 0, 1, 1, 2, 2]  # stratified
    assert np.allclose(spec.mean, train.inputs.double().mean(0).numpy(), atol=1e-5)
    assert np.allclose(spec.std, train.inputs.double().std(0, unbiased=False).numpy(), atol=1e-5)
    # The split is fixed: loading again gives the same rows.
    assert torch.equal(get_dataset(f"csv:{path}").load("test").inputs, test.inputs)


def test_csv_without_label_header_uses_last_column(tmp_path):
    path = tmp_path / "numbers.csv"
    write_csv(path, label_column=False)
    path.write_text(path.read_text().replace(",cat,", ",1,").replace(",dog,", ",2,").replace(",emu,", ",3,"))
    spec = get_dataset(f"csv:{path}")
    assert spec.num_classes == 3 and spec.input_shape == (3,)
    assert spec.load("train").labels.max() == 2


def test_csv_bad_cell_names_line_and_column(cli, tmp_path):
    path = tmp_path / "bad.csv"
    write_csv(path)
    lines = path.read_text().splitlines()
    lines[5] = "abc," + lines[5].split(",", 1)[1]
    path.write_text("\n".join(lines) + "\n")
    result = cli("train", "--dataset", f"csv:{path}", "--epochs", "1", "--out", tmp_path / "r")
    assert result.exit_code == 2
    assert "line 6, column 'width'" in result.stderr
    missing = cli("train", "--dataset", f"csv:{tmp_path / 'nope.csv'}", "--epochs", "1", "--out", tmp_path / "r")
    assert missing.exit_code == 2 and "does not exist" in missing.stderr


def test_csv_trains_one_epoch(cli, tmp_path):
    path = tmp_path / "animals.csv"
    write_csv(path)
    summary = train_one_epoch(cli, tmp_path, f"csv:{path}")
    assert summary["model"] == "mlp"


@pytest.mark.parametrize("name", ["iris", "wine", "breast-cancer"])
def test_sklearn_table_statistics_are_the_training_split(name):
    spec = get_dataset(name)
    train = spec.load("train")
    assert np.allclose(spec.mean, train.inputs.double().mean(0).numpy(), rtol=1e-4, atol=1e-6)
    assert np.allclose(spec.std, train.inputs.double().std(0, unbiased=False).numpy(), rtol=1e-4, atol=1e-6)
    assert spec.input_shape == (train.inputs.shape[1],) and spec.num_classes == int(train.labels.max()) + 1


def test_download_flag_fetches_through_torchvision_then_loads(cli, tmp_path, monkeypatch):
    """--download calls torchvision's CIFAR10(download=True) for both splits, then reads the
    files it left; torchvision is replaced by a stand-in that writes them, so no network is used."""
    import torchvision.datasets

    calls = []

    class FakeCIFAR10:
        def __init__(self, root, train, download):
            calls.append((root, train, download))
            if not (tmp_path / "data" / "cifar-10-batches-py").exists():
                write_cifar(tmp_path / "data", per_file=4)

    monkeypatch.setattr(torchvision.datasets, "CIFAR10", FakeCIFAR10)
    train_one_epoch(cli, tmp_path, "cifar10", tmp_path / "data", "--model", "small-cnn", "--download")
    assert calls == [(str(tmp_path / "data"), True, True), (str(tmp_path / "data"), False, True)]
