"""One writer per run directory (issue 21, item 1): a second `mixup train`/`gan`/`corrupt-labels` on a
directory a live process writes is refused naming that process, and a SIGKILLed holder leaves no stuck lock."""
import json
import os
import signal
import subprocess
import sys

import pytest
import yaml

from conftest import SRC, THREADS_ENV, run_inprocess, wait_until
from mixup_cli.errors import ConfigError
from mixup_cli.runs import CORRUPT_LABELS_EXPERIMENT, GAN_EXPERIMENT, LOCK, TRAIN_RUN, DirLock, holds

ENV = dict(os.environ, PYTHONPATH=str(SRC), COLUMNS="200", **THREADS_ENV)


def mixup(*args):
    return subprocess.Popen([sys.executable, "-m", "mixup_cli", *map(str, args)], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env=ENV)


def locked_by(out, proc):
    return lambda: (out / LOCK).is_file() and (out / LOCK).read_text().strip() == str(proc.pid)


def epochs_done(out, count):
    return lambda: (out / "metrics.jsonl").is_file() and len((out / "metrics.jsonl").read_text().splitlines()) >= count


def test_a_second_writer_is_refused_naming_the_live_process_and_the_first_run_finishes_untouched(tmp_path):
    out = tmp_path / "R"
    first = mixup("train", "--epochs", 50, "--alpha", 1, "--out", out)
    wait_until(locked_by(out, first), first)
    seconds = [mixup("train", "--alpha", 0, "--out", out, *extra) for extra in (["--force"], ["--resume"], [])]
    for proc in seconds:
        _, err = proc.communicate(timeout=300)
        assert proc.returncode == 2, err
        line = err.strip()
        assert "\n" not in line and f"PID {first.pid}" in line and str(out) in line, line
    assert first.poll() is None, "the first run ended before the second writers were refused; the test proves nothing"
    _, err = first.communicate(timeout=600)
    assert first.returncode == 0, err
    epochs = [json.loads(line)["epoch"] for line in (out / "metrics.jsonl").read_text().splitlines()]
    assert epochs == list(range(1, 51))  # every epoch once: nothing interleaved, nothing replaced
    assert yaml.safe_load((out / "config.yaml").read_text())["alpha"] == 1
    assert json.loads((out / "summary.json").read_text())["epochs"] == 50
    assert not (out / LOCK).exists()  # released (and removed) when the run ended


def test_a_sigkilled_holder_leaves_no_stuck_lock(tmp_path):
    out = tmp_path / "R"
    first = mixup("train", "--epochs", 4, "--out", out)
    wait_until(lambda: locked_by(out, first)() and epochs_done(out, 1)() and (out / "last.pt").is_file(), first)
    first.send_signal(signal.SIGKILL)
    first.wait(timeout=60)
    assert (out / LOCK).is_file()  # the file stays, with the dead PID; the lock went with the process
    stale = tmp_path / "S"
    stale.mkdir()
    (stale / LOCK).write_text((out / LOCK).read_text())
    assert not any(holds(kind, stale) for kind in (TRAIN_RUN, GAN_EXPERIMENT, CORRUPT_LABELS_EXPERIMENT))
    resumed = run_inprocess("train", "--resume", "--out", out, "--json")
    assert resumed.exit_code == 0, resumed.stderr
    assert resumed.json()["epochs"] == 4 and not (out / LOCK).exists()


def hold_lock(directory):
    """A real other process holding `directory`'s lock until it is killed."""
    code = ("import sys, time; from mixup_cli.runs import DirLock; lock = DirLock(); lock.take(sys.argv[1]); "
            "print('held', flush=True); time.sleep(600)")
    proc = subprocess.Popen([sys.executable, "-c", code, str(directory)], stdout=subprocess.PIPE, text=True, env=ENV)
    assert proc.stdout.readline().strip() == "held"
    return proc


@pytest.mark.parametrize("command", [["gan", "--iterations", 10], ["corrupt-labels", "--fraction", "0.2"]])
def test_gan_and_corrupt_labels_refuse_a_directory_another_process_writes(tmp_path, command):
    out = tmp_path / "R"
    out.mkdir()
    (out / "keep.txt").write_text("someone's file")
    holder = hold_lock(out)
    try:
        for extra in (["--force"], ["--resume"], []):
            result = run_inprocess(*command, "--out", out, *extra)
            assert result.exit_code == 2 and f"PID {holder.pid}" in result.stderr, result.stderr
        with pytest.raises(ConfigError, match=f"PID {holder.pid}"):
            DirLock().take(out)  # the lock itself, not only the early check, refuses a second writer
        assert sorted(p.name for p in out.iterdir()) == sorted([LOCK, "keep.txt"])
    finally:
        holder.kill()
        holder.wait()
    with DirLock() as lock:  # free once the holder is gone
        lock.take(out)
        assert (out / LOCK).read_text().strip() == str(os.getpid())
    assert not (out / LOCK).exists()


def test_resume_in_an_immutable_run_directory_is_one_line(cli, tmp_path):
    """chattr +i stops even root from writing: the resume is refused in one line, and the run is untouched."""
    import shutil

    out = tmp_path / "run"
    assert cli("train", "--epochs", "1", "--out", out).exit_code == 0
    if shutil.which("chattr") is None or subprocess.run(["chattr", "+i", str(out)]).returncode != 0:
        pytest.skip("chattr +i is not available on this filesystem")
    try:
        before = sorted(p.name for p in out.iterdir())
        result = cli("train", "--resume", "--epochs", "2", "--out", out)
        assert result.exit_code == 2 and "not writable" in result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and sorted(p.name for p in out.iterdir()) == before
    finally:
        subprocess.run(["chattr", "-i", str(out)])
