"""A full disk while writing checkpoints (issue 21, item 5), on a real small tmpfs: one line naming the
problem, the previous checkpoint kept, no temporary file left, and a run whose first checkpoint never fit
starts again in the same folder without --force. Skipped where this process may not mount a tmpfs."""
import shutil
import subprocess

import pytest

from conftest import run_inprocess
from mixup_cli.checkpoint import load_checkpoint


def mount(folder, size):
    return subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                          capture_output=True).returncode == 0


def resize(folder, size):
    subprocess.run(["mount", "-o", f"remount,size={size}", str(folder)], check=True, capture_output=True)


@pytest.fixture
def small_disk(tmp_path):
    folder = tmp_path / "disk"
    folder.mkdir()
    if shutil.which("mount") is None or not mount(folder, "128k"):
        pytest.skip("cannot mount a tmpfs here (needs root)")
    yield folder
    subprocess.run(["umount", "-l", str(folder)], capture_output=True)


def hidden(folder):
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def test_a_first_checkpoint_that_never_fits_says_so_and_the_run_starts_again_without_force(small_disk):
    out = small_disk / "R"
    result = run_inprocess("train", "--epochs", "2", "--out", out)
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert line.startswith("error: ") and "No space left on device" in line and "last.pt" in line, line
    assert "unexpected pos" not in result.stderr and "RuntimeError" not in result.stderr
    assert hidden(out) == [] and not (out / "last.pt").exists()
    resize(small_disk, "8m")
    result = run_inprocess("train", "--epochs", "2", "--out", out, "--resume")
    assert result.exit_code == 2 and "start it again without --resume" in result.stderr
    result = run_inprocess("train", "--epochs", "2", "--out", out)  # no --force needed: nothing was saved
    assert result.exit_code == 0, result.stderr
    assert load_checkpoint(out / "last.pt")["epoch"] == 2
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 2


def test_a_full_disk_later_keeps_the_previous_checkpoint_and_leaves_no_temporary_file(small_disk):
    resize(small_disk, "8m")
    out = small_disk / "R"
    assert run_inprocess("train", "--epochs", "1", "--out", out).exit_code == 0
    used = shutil.disk_usage(small_disk).used
    resize(small_disk, str(used + 32 * 1024))
    result = run_inprocess("train", "--epochs", "2", "--out", out, "--resume")
    assert result.exit_code == 1
    line = result.stderr.strip().splitlines()[-1]
    assert "No space left on device" in line and "previous checkpoint is kept" in line, line
    assert hidden(out) == []
    assert load_checkpoint(out / "last.pt")["epoch"] == 1  # intact, and a resume continues from it
    resize(small_disk, "8m")
    assert run_inprocess("train", "--epochs", "2", "--out", out, "--resume").exit_code == 0
    assert load_checkpoint(out / "last.pt")["epoch"] == 2


def test_a_folder_with_metrics_but_no_checkpoint_is_not_a_run_and_takes_a_new_one_without_force(tmp_path):
    out = tmp_path / "R"
    assert run_inprocess("train", "--epochs", "1", "--out", out).exit_code == 0
    for name in ("last.pt", "best.pt", "summary.json"):  # what a run whose checkpoints never fit holds
        (out / name).unlink()
    result = run_inprocess("train", "--epochs", "1", "--out", out)
    assert result.exit_code == 0, result.stderr
    assert len((out / "metrics.jsonl").read_text().splitlines()) == 1  # the old epoch was cleared, not appended to
