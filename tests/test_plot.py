"""`mixup plot`: training curves from real runs' metrics.jsonl (Figure 3b), seeds drawn as one band."""
import json
import statistics
from pathlib import Path

import pytest
import yaml


def metrics(run):
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(scope="module")
def seeded_mixup(tmp_path_factory):
    from conftest import run_inprocess

    root = tmp_path_factory.mktemp("plot") / "mixup-seeds"
    result = run_inprocess("train", "--alpha", "1", "--epochs", "2", "--seeds", "0,1", "--out", root)
    assert result.exit_code == 0, result.stderr
    return root


def test_plot_draws_runs_and_a_seed_band(cli, digits_runs, seeded_mixup, tmp_path):
    png, svg = tmp_path / "fig.png", tmp_path / "fig.svg"
    result = cli("plot", digits_runs["erm"], seeded_mixup, "--out", png, "--out", svg, "--json")
    assert result.exit_code == 0, result.stderr
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and b"<svg" in svg.read_bytes()[:500]
    payload = result.json()
    assert payload["figures"] == [str(png), str(svg)]
    erm, mixup = payload["curves"]
    assert erm["label"] == "erm" and erm["epochs"] == [1, 2, 3] and len(erm["runs"]) == 1
    assert erm["metrics"]["test_error"][2]["mean"] == metrics(digits_runs["erm"])[2]["test_error"]
    # The two seeds are one line: their mean per epoch, with their spread.
    assert mixup["label"] == "mixup-seeds" and len(mixup["runs"]) == 2 and mixup["epochs"] == [1, 2]
    seeds = [metrics(seeded_mixup / f"seed-{s}") for s in (0, 1)]
    for epoch in (0, 1):
        values = [run[epoch]["train_loss"] for run in seeds]
        stat = mixup["metrics"]["train_loss"][epoch]
        assert stat["n"] == 2 and stat["mean"] == pytest.approx(statistics.fmean(values))
        assert stat["std"] == pytest.approx(statistics.stdev(values))
    assert "mixup-seeds: 2 run(s), 2 epochs" in result.stderr and str(png) in result.stderr


def write_run(path, alpha, seed, threads=None, lines=None):
    path.mkdir(parents=True)
    (path / "config.yaml").write_text(yaml.safe_dump({"dataset": "digits", "alpha": alpha, "seed": seed,
                                                      "threads": threads, "out": str(path)}))
    lines = lines or [json.dumps({"epoch": e, "test_error": 10.0 * seed + e, "lr": 0.1}) for e in (1, 2, 3)]
    (path / "metrics.jsonl").write_text("\n".join(lines) + "\n")


def test_only_the_seed_and_speed_settings_are_pooled(cli, tmp_path):
    write_run(tmp_path / "a-s0", 1.0, 0, threads=1)
    write_run(tmp_path / "a-s1", 1.0, 1, threads=None)  # another thread count: still the same experiment
    write_run(tmp_path / "b-s0", 0.0, 0)
    result = cli("plot", tmp_path / "a-s0", tmp_path / "a-s1", tmp_path / "b-s0", "--metric", "test_error",
                 "--out", tmp_path / "f.png", "--label", "mixup", "--label", "ERM", "--json")
    assert result.exit_code == 0, result.stderr
    curves = result.json()["curves"]
    assert [c["label"] for c in curves] == ["mixup", "ERM"] and [len(c["runs"]) for c in curves] == [2, 1]
    assert [s["mean"] for s in curves[0]["metrics"]["test_error"]] == [6.0, 7.0, 8.0]


def test_resumed_epochs_keep_the_last_record_and_a_torn_line_is_skipped(cli, tmp_path):
    lines = [json.dumps({"epoch": 1, "test_error": 50.0}), json.dumps({"epoch": 2, "test_error": 40.0}),
             json.dumps({"epoch": 2, "test_error": 30.0}), '{"epoch": 3, "test_er']
    write_run(tmp_path / "run", 1.0, 0, lines=lines)
    result = cli("plot", tmp_path / "run", "--metric", "test_error", "--out", tmp_path / "f.svg", "--json")
    assert result.exit_code == 0, result.stderr
    curve = result.json()["curves"][0]
    assert curve["epochs"] == [1, 2] and curve["metrics"]["test_error"][1]["mean"] == 30.0


@pytest.mark.parametrize("args, message", [
    (["{missing}"], "is neither a run directory"),
    (["{run}", "--metric", "test_accuracy"], "metric 'test_accuracy' is not in"),
    (["{run}", "--out", "{tmp}/fig.jpg"], "must end in .png, .svg, .pdf"),
    (["{run}", "--label", "a", "--label", "b"], "2 --label given for 1 curves"),
    (["{run}", "--out", "{tmp}/taken.png"], "already exists"),
    (["{run}", "{empty}"], "holds no finished epoch yet"),
    (["{run}", "{old}", "--metric", "test_error,lr"], "metric 'lr' is not in"),
])
def test_bad_input_is_one_line_and_writes_nothing(cli, tmp_path, args, message):
    write_run(tmp_path / "run", 1.0, 0)
    write_run(tmp_path / "empty", 1.0, 1, lines=['{"epoch": 1, "test_er'])  # killed while writing epoch 1
    write_run(tmp_path / "old", 1.0, 1, lines=[json.dumps({"epoch": 1, "test_error": 5.0})])  # the seeds' 2nd run, no lr
    (tmp_path / "taken.png").write_bytes(b"keep me")
    before = sorted(p.name for p in tmp_path.iterdir())
    filled = [a.format(run=tmp_path / "run", missing=tmp_path / "nope", tmp=tmp_path, empty=tmp_path / "empty",
                       old=tmp_path / "old") for a in args]
    if not any(a == "--out" for a in filled):
        filled += ["--out", str(tmp_path / "new.png")]
    result = cli("plot", *filled)
    assert result.exit_code == 2 and message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == before
    assert (tmp_path / "taken.png").read_bytes() == b"keep me"


def test_corrupt_label_seeds_pool_and_same_named_curves_say_what_differs(cli, tmp_path):
    """A corrupt-labels experiment's seeds train on different label files of one corruption setting."""
    from mixup_cli.data.labels import make_corrupted_labels, save_label_file

    runs = []
    for fraction, seed in ((0.5, 0), (0.5, 1), (0.2, 0)):
        labels = save_label_file(make_corrupted_labels("digits", fraction, seed), tmp_path / f"l-{fraction}-{seed}.pt")
        run = tmp_path / f"s{seed}" / f"fraction-{fraction}" / "mixup"
        write_run(run, 1.0, seed)
        config = yaml.safe_load((run / "config.yaml").read_text())
        (run / "config.yaml").write_text(yaml.safe_dump({**config, "labels": str(labels)}))
        runs.append(run)
    result = cli("plot", *runs, "--metric", "test_error", "--out", tmp_path / "f.png", "--json")
    assert result.exit_code == 0, result.stderr
    curves = result.json()["curves"]
    assert [len(c["runs"]) for c in curves] == [2, 1]
    assert [c["label"] for c in curves] == ["mixup (fraction=0.5)", "mixup (fraction=0.2)"]


def test_a_name_ending_in_s_and_digits_is_no_seed_suffix(cli, tmp_path):
    write_run(tmp_path / "erm-epochs200", 0.0, 0)
    write_run(tmp_path / "mixup-s1", 1.0, 1)
    result = cli("plot", tmp_path / "erm-epochs200", tmp_path / "mixup-s1", "--metric", "test_error",
                 "--out", tmp_path / "f.png", "--json")
    assert result.exit_code == 0, result.stderr
    assert [c["label"] for c in result.json()["curves"]] == ["erm-epochs200", "mixup"]


def test_same_named_lines_never_read_alike(cli, tmp_path):
    """Three lines named 'x': each shows the same keys, enough of them to tell every pair apart."""
    settings = [dict(alpha=1.0, dropout=0.1, lr=0.1, weight_decay=1e-4),
                dict(alpha=1.0, dropout=0.1, lr=0.1, weight_decay=5e-4),
                dict(alpha=2.0, dropout=0.2, lr=0.2, weight_decay=1e-4)]
    runs = []
    for i, setting in enumerate(settings):
        write_run(tmp_path / str(i) / "x", 1.0, 0)
        config = yaml.safe_load((tmp_path / str(i) / "x" / "config.yaml").read_text())
        (tmp_path / str(i) / "x" / "config.yaml").write_text(yaml.safe_dump({**config, **setting}))
        runs.append(tmp_path / str(i) / "x")
    result = cli("plot", *runs, "--metric", "test_error", "--out", tmp_path / "f.png", "--json")
    assert result.exit_code == 0, result.stderr
    labels = [c["label"] for c in result.json()["curves"]]
    assert len(set(labels)) == 3, labels
    assert labels[0] == "x (alpha=1.0, dropout=0.1, lr=0.1, weight_decay=0.0001)"


def test_relative_label_files_pool_from_another_folder(cli, tmp_path, monkeypatch):
    """corrupt-labels --out exp writes labels: exp/fraction-0.5/labels.pt, relative to where it ran."""
    from mixup_cli.data.labels import make_corrupted_labels, save_label_file

    monkeypatch.chdir(tmp_path)
    runs = []
    for seed in (0, 1):
        root = Path(f"exp-s{seed}") / "fraction-0.5"
        root.mkdir(parents=True)
        labels = save_label_file(make_corrupted_labels("digits", 0.5, seed), root / "labels.pt")
        write_run(root / "mixup", 1.0, seed)
        config = yaml.safe_load((root / "mixup" / "config.yaml").read_text())
        (root / "mixup" / "config.yaml").write_text(yaml.safe_dump({**config, "labels": str(labels)}))
        runs.append(root / "mixup")
    monkeypatch.chdir(tmp_path / "exp-s0")
    result = cli("plot", "fraction-0.5/mixup", "../exp-s1/fraction-0.5/mixup", "--metric", "test_error",
                 "--out", tmp_path / "f.png", "--json")
    assert result.exit_code == 0, result.stderr
    assert [len(c["runs"]) for c in result.json()["curves"]] == [2]
