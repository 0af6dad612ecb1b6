"""Verified checkpoints (issue 21, item 3): a flipped bit in a weight is refused by `eval` and `--resume`,
old checkpoints without a checksum still load, and crafted payloads give one line and exit 2."""
import shutil
import struct
import time
import zipfile

import pytest
import torch

from conftest import run_inprocess
from mixup_cli.checkpoint import CHECKSUM, load_checkpoint, load_model, save_checkpoint
from mixup_cli.errors import ConfigError


def one_error_line(result, *names):
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:"), result.stderr
    assert all(name in lines[0] for name in names), lines[0]
    return lines[0]


def flip_a_weight_bit(path):
    """Flip one bit in the middle of the largest tensor storage of a torch zip archive, in place."""
    with zipfile.ZipFile(path) as archive:
        entry = max((i for i in archive.infolist() if "/data/" in i.filename), key=lambda i: i.file_size)
        assert entry.compress_type == zipfile.ZIP_STORED
    data = bytearray(path.read_bytes())
    name_len, extra_len = struct.unpack("<HH", data[entry.header_offset + 26: entry.header_offset + 30])
    start = entry.header_offset + 30 + name_len + extra_len
    data[start + entry.file_size // 2] ^= 0x10
    path.write_bytes(bytes(data))


@pytest.fixture
def run(tmp_path, digits_runs):
    out = tmp_path / "run"
    shutil.copytree(digits_runs["mixup"], out)
    (out / "best.pt").unlink()  # a copy of last.pt (a hard link in the run): eval and --resume read last.pt
    shutil.copy(out / "last.pt", out / "best.pt")
    return out


def test_a_flipped_bit_in_a_weight_is_refused_by_eval_and_resume(run):
    original = torch.load(run / "last.pt", weights_only=True)["state_dict"]
    for name in ("last.pt", "best.pt"):
        flip_a_weight_bit(run / name)
    flipped = torch.load(run / "last.pt", weights_only=True)["state_dict"]  # torch itself loads it silently
    assert any(not torch.equal(original[k], flipped[k]) for k in original)
    one_error_line(run_inprocess("eval", "--ckpt", run / "best.pt"), "best.pt", "corrupted", "checksum")
    one_error_line(run_inprocess("train", "--resume", "--epochs", "4", "--out", run), "last.pt", "corrupted")


def test_checkpoints_carry_a_checksum_and_old_ones_without_it_still_load(tmp_path, run):
    payload = torch.load(run / "last.pt", weights_only=True)
    assert payload[CHECKSUM].startswith("sha256:") and len(payload[CHECKSUM]) == 7 + 64
    del payload[CHECKSUM]
    old = tmp_path / "old.pt"
    torch.save(payload, old)  # as checkpoints were written before the checksum
    assert CHECKSUM not in load_checkpoint(old)
    result = run_inprocess("eval", "--ckpt", old)
    assert result.exit_code == 0, result.stderr


def crafted(run, tmp_path, change):
    payload = load_checkpoint(run / "last.pt")
    change(payload)
    path = tmp_path / "crafted.pt"
    save_checkpoint(payload, path)  # a valid checksum: only the contents are wrong
    return path


def set_in(keys, value):
    def change(payload):
        record = payload
        for key in keys[:-1]:
            record = record[key]
        if value is KeyError:
            del record[keys[-1]]
        else:
            record[keys[-1]] = value
    return change


@pytest.mark.parametrize("keys,value,says", [
    (["model"], KeyError, "no 'model'"),
    (["model"], "small_cnn", "'model' is a str"),
    (["dataset", "name"], KeyError, "no 'dataset.name'"),
    (["state_dict"], [1, 2], "'state_dict' is a list"),
    (["model", "num_classes"], "10", "'model.num_classes' is a str"),
    (["model", "input_shape"], [1, 8, 10 ** 9], "out of bounds"),
    (["model", "options", "width"], [32], "out of bounds"),
    (["model", "options", "width"], "wide", "cannot be built"),
    (["state", "epoch"], None, "'state.epoch' is a NoneType"),
])
def test_crafted_payloads_give_one_line_and_exit_2(tmp_path, run, keys, value, says):
    path = crafted(run, tmp_path, set_in(keys, value))
    one_error_line(run_inprocess("eval", "--ckpt", path), "crafted.pt", says)


def test_a_checkpoint_asking_for_a_huge_model_is_refused_before_allocating(tmp_path, run):
    path = crafted(run, tmp_path, set_in(["model", "options", "width"], 20000))  # 14 GB of weights
    start = time.perf_counter()
    one_error_line(run_inprocess("eval", "--ckpt", path), "crafted.pt", "parameters", "over the limit")
    with pytest.raises(ConfigError, match="over the limit"):
        load_model(path)
    assert time.perf_counter() - start < 30


def test_a_crafted_last_pt_is_refused_on_resume_with_one_line(run):
    shutil.copy(crafted(run, run, set_in(["state", "not_a_field"], 1)), run / "last.pt")
    one_error_line(run_inprocess("train", "--resume", "--epochs", "4", "--out", run), "last.pt", "does not fit")
