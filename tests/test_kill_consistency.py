"""best.pt agrees with the summary after a kill between the last.pt and best.pt writes, and a resume
removes the temporary files killed writes leave (issue 21, item 4)."""
import json
import shutil

from conftest import run_inprocess


def train(out, *extra):
    result = run_inprocess("train", "--epochs", "2", "--out", out, "--json", *extra)
    assert result.exit_code == 0, result.stderr
    return result


def eval_epoch(path):
    result = run_inprocess("eval", "--ckpt", path, "--json")
    assert result.exit_code == 0, result.stderr
    return result.json()["epoch"]


def test_a_resume_repairs_a_best_pt_left_behind_and_removes_orphan_temp_files(tmp_path):
    out = tmp_path / "R"
    result = run_inprocess("train", "--epochs", "1", "--out", out, "--json")
    assert result.exit_code == 0, result.stderr
    shutil.copy(out / "best.pt", tmp_path / "epoch1.pt")
    train(out, "--resume")
    summary = json.loads((out / "summary.json").read_text())
    assert summary["best_epoch"] == 2, "the test needs epoch 2 to be the best"
    # What a SIGKILL after last.pt's rename and before best.pt's leaves: best.pt one best behind, debris.
    (out / "best.pt").unlink()
    shutil.copy(tmp_path / "epoch1.pt", out / "best.pt")
    assert eval_epoch(out / "best.pt") == 1
    orphans = [".last.pt.k1lled.tmp", ".best.pt.x9.tmp", ".best.pt.4242.link", ".metrics.jsonl.tmp"]
    for name in orphans:
        (out / name).write_bytes(b"")
    (out / "notes.tmp").write_text("mine")  # not a name mixup writes: kept
    result = train(out, "--resume")
    assert "repaired" in result.stderr and "held epoch 1" in result.stderr, result.stderr
    summary = json.loads((out / "summary.json").read_text())
    assert eval_epoch(out / "best.pt") == summary["best_epoch"] == 2
    assert not [name for name in orphans if (out / name).exists()]
    assert (out / "notes.tmp").read_text() == "mine"
    result = train(out, "--resume")  # consistent now: nothing more to say
    assert "repaired" not in result.stderr and "warning" not in result.stderr
