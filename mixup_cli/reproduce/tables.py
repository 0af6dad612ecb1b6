"""The paper's tables and figures as protocols: which runs each needs, and how its report reads them.

Each protocol has two scales. `quick` runs on a 2-core CPU in minutes to about an hour (real
Fashion-MNIST or the embedded data, small models, short schedules); `paper` runs the paper's datasets,
models, epochs and alpha (a GPU and the datasets' files). A report is plain data: rows of our numbers
(mean ± std over seeds) beside the paper's, and whether the paper's direction holds at this scale.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Callable, Optional

from ..errors import ConfigError
from ..registry import Registry
from ..seeds import mean_std
from . import paper
from .jobs import PACKAGE_ROOT, Job, read_result

EXAMPLES = PACKAGE_ROOT / "examples"
SCALES = ("quick", "paper")
PAPER_ORDER = ("table1", "table2", "table3", "table4", "table5", "figure2", "figure5")  # what `all` runs

# Table 1's runs at each scale: (recipe stem without -erm/-mixup, single-thread CPU seconds per run on an
# idle core, the paper's numbers to print beside ours).
CLASSIFICATION = {
    "quick": ("fashion-mnist-small-cnn", 20 * 27.0),
    "paper": ("cifar10-preact-resnet18", 200 * 4000.0),
}


@dataclasses.dataclass(frozen=True)
class Protocol:
    name: str
    title: str
    plan: Callable[[str, list[int], dict], list[Job]]  # (scale, seeds, options) -> jobs
    report: Callable[[str, list[int], dict, Path], dict]  # (scale, seeds, options, root) -> report


PROTOCOLS: Registry[Protocol] = Registry("table")


def register(protocol: Protocol) -> Protocol:
    PROTOCOLS.register(protocol.name)(protocol)
    return protocol


def data_args(options: dict) -> list[str]:
    return ["--data-dir", options["data_dir"]] if options.get("data_dir") else []


def recipe(stem: str, method: str) -> Path:
    path = EXAMPLES / f"{stem}-{method}.yaml"
    if not path.is_file():
        raise ConfigError(f"recipe '{path}' is missing: mixup reproduce reads the recipes in examples/ of a "
                          f"checkout of this project; run it from one")
    return path


# ---------------------------------------------------------------------------------------------
# Table 1 / Figure 3a: generalization, ERM against mixup.

BLACK_BOX_SEED = 100  # the separate ERM model that makes Table 3's black-box examples


def train_job(scale: str, method: str, seed: int, options: dict) -> Job:
    stem, seconds = CLASSIFICATION[scale]
    args = ["train", "--config", str(recipe(stem, method)), "--seed", str(seed), "--threads", "1",
            "--device", options.get("device", "auto"), *data_args(options)]
    epochs = options.get("epochs")
    if epochs:  # a shorter check of the whole pipeline; the recipe's own epochs otherwise
        args += ["--epochs", str(epochs)]
        seconds *= epochs / recipe_epochs(stem, method)
    return Job(f"train/{method}-s{seed}", tuple(args), seconds, resume_marker="last.pt")


def recipe_epochs(stem: str, method: str) -> int:
    import yaml

    return int(yaml.safe_load(recipe(stem, method).read_text())["epochs"])


def table1_plan(scale: str, seeds: list[int], options: dict) -> list[Job]:
    return [train_job(scale, method, seed, options) for seed in seeds for method in ("erm", "mixup")]


def collapsed(summary: dict, num_classes: int = 10) -> bool:
    """A run whose last test error is near chance learned nothing (or diverged): a result to flag, not
    a number to average."""
    chance = 100.0 * (1 - 1 / num_classes)
    error = summary.get("test_error")
    return error is None or error != error or error >= 0.9 * chance


def table1_report(scale: str, seeds: list[int], options: dict, root: Path) -> dict:
    stem, _ = CLASSIFICATION[scale]
    rows, flagged = [], []
    for method in ("erm", "mixup"):
        summaries = [read_result(train_job(scale, method, s, options), root) for s in seeds]
        kept = [s for s in summaries if not collapsed(s)]
        flagged += [f"{method} seed {s['seed']}: last test error {s['test_error']}" for s in summaries if collapsed(s)]
        rows.append({"method": method, "recipe": f"{stem}-{method}",
                     **{key: mean_std([s[key] for s in kept]) for key in
                        ("test_error", "best_test_error", "median_last10_test_error")},
                     "paper_test_error": paper.CIFAR[("cifar10", "preact-resnet18")][method],
                     "seconds": mean_std([s["seconds"] for s in summaries])})
    erm, mixup = rows[0]["test_error"]["mean"], rows[1]["test_error"]["mean"]
    holds = None if erm is None or mixup is None else mixup < erm
    return {"rows": rows, "collapsed": flagged, "paper_direction": "mixup has lower test error than ERM",
            "direction_holds": holds,
            "paper_source": f"{paper.SOURCE}, Figure 3a (CIFAR-10, PreAct ResNet-18)"}


register(Protocol("table1", "Generalization: ERM vs mixup (Table 1, Figure 3a)", table1_plan, table1_report))


# ---------------------------------------------------------------------------------------------
# Table 3: FGSM and I-FGSM at epsilon 4/255 on Table 1's models, white box and black box.

ATTACK_SECONDS = {"quick": 60.0, "paper": 600.0}  # per attacked model


def attack_jobs(scale: str, seeds: list[int], options: dict, root: Path) -> list[Job]:
    targets = [train_job(scale, m, s, options) for s in seeds for m in ("erm", "mixup")]
    source = train_job(scale, "erm", BLACK_BOX_SEED, options)
    ckpts = [arg for job in targets for arg in ("--ckpt", str(job.folder(root) / "last.pt"))]
    common = ("attack", "--method", "fgsm,ifgsm", "--epsilon", "4", "--device", options.get("device", "auto"), *ckpts)
    seconds = ATTACK_SECONDS[scale] * len(targets)
    return [Job("attack/white-box", common, seconds),
            Job("attack/black-box", (*common, "--source-ckpt", str(source.folder(root) / "last.pt")), seconds)]


def table3_plan(scale: str, seeds: list[int], options: dict) -> list[Job]:
    source = train_job(scale, "erm", BLACK_BOX_SEED, options)
    return [*table1_plan(scale, seeds, options), source, *attack_jobs(scale, seeds, options, options["root"])]


def table3_report(scale: str, seeds: list[int], options: dict, root: Path) -> dict:
    rows = []
    for job in attack_jobs(scale, seeds, options, root):
        results = read_result(job, root)["results"]
        setting = job.key.split("/")[1].replace("-", " ")
        for method in ("erm", "mixup"):
            for attack in ("fgsm", "ifgsm"):
                cells = [r for r in results if r["train_method"] == method and r["method"] == attack]
                expected = paper.ATTACKS[setting][method][attack]
                rows.append({"setting": setting, "method": method, "attack": attack,
                             "top1_error": mean_std([r["top1_error"] for r in cells]),
                             "top5_error": mean_std([r["top5_error"] for r in cells if r["top5_error"] is not None]),
                             "clean_top1_error": mean_std([r["clean_top1_error"] for r in cells]),
                             "paper_top1_error": expected[0], "paper_top5_error": expected[1]})
    holds = {}
    for setting in ("white box", "black box"):
        for attack in ("fgsm", "ifgsm"):
            erm, mixup = (next(r for r in rows if (r["setting"], r["method"], r["attack"]) == (setting, m, attack))
                          ["top1_error"]["mean"] for m in ("erm", "mixup"))
            holds[f"{setting} {attack}"] = None if erm is None else mixup < erm
    return {"rows": rows, "paper_direction": "mixup has lower top-1 error under attack than ERM",
            "direction_holds": holds, "epsilon": "4/255",
            "paper_source": f"{paper.SOURCE}, Table 3 (ImageNet, ResNet-101)"}


register(Protocol("table3", "Robustness to adversarial examples: FGSM and I-FGSM (Table 3)", table3_plan,
                  table3_report))


# ---------------------------------------------------------------------------------------------
# Figure 2 and calibration: Table 1's models between training examples, and their confidence.

def analysis_jobs(scale: str, seeds: list[int], options: dict, root: Path) -> list[Job]:
    targets = [train_job(scale, m, s, options) for s in seeds for m in ("erm", "mixup")]
    ckpts = [arg for job in targets for arg in ("--ckpt", str(job.folder(root) / "last.pt"))]
    common = ("eval", "--device", options.get("device", "auto"), *data_args(options), *ckpts)
    seconds = {"quick": 10.0, "paper": 60.0}[scale] * len(targets)
    return [Job("analysis/between", (*common, "--between"), seconds),
            Job("analysis/calibration", (*common, "--calibration"), seconds)]


def figure2_plan(scale: str, seeds: list[int], options: dict) -> list[Job]:
    return [*table1_plan(scale, seeds, options), *analysis_jobs(scale, seeds, options, options["root"])]


def figure2_report(scale: str, seeds: list[int], options: dict, root: Path) -> dict:
    between_job, calibration_job = analysis_jobs(scale, seeds, options, root)
    between = read_result(between_job, root)
    calibration = read_result(calibration_job, root)
    calibration = calibration if isinstance(calibration, list) else [calibration]
    rows = []
    for method in ("erm", "mixup"):
        models = [m for m in between["models"] if m["method"] == method]
        cal = [c for c in calibration if c["method"] == method]
        rows.append({"method": method,
                     "miss_percent": [mean_std([m["miss_percent"][k] for m in models]) for k in range(len(between["lambda"]))],
                     "grad_norm": [mean_std([m["grad_norm"][k] for m in models]) for k in range(len(between["lambda"]))],
                     "ece_percent": mean_std([c["ece_percent"] for c in cal]),
                     "nll": mean_std([c["nll"] for c in cal])})
    erm, mixup = rows
    inside = [k for k, lam in enumerate(between["lambda"]) if lam < 1.0]
    holds = {"fewer misses in-between": all(mixup["miss_percent"][k]["mean"] < erm["miss_percent"][k]["mean"] for k in inside),
             "smaller gradient norms in-between": all(mixup["grad_norm"][k]["mean"] < erm["grad_norm"][k]["mean"] for k in inside),
             "lower calibration error": mixup["ece_percent"]["mean"] < erm["ece_percent"]["mean"]}
    return {"rows": rows, "lambda": between["lambda"], "pairs": between["pairs"],
            "paper_direction": "mixup misses less and has smaller input gradients between training examples "
                               "(Figure 2); mixup is better calibrated (Thulasidasan et al. 2019)",
            "direction_holds": holds, "paper_source": f"{paper.SOURCE}, Figure 2 (CIFAR-10, PreAct ResNet-18)"}


register(Protocol("figure2", "In-between behaviour and calibration (Figure 2)", figure2_plan, figure2_report))


# ---------------------------------------------------------------------------------------------
# Table 2: memorization of corrupted labels, one `mixup corrupt-labels` experiment per seed.

CORRUPTION = {
    # quick: the embedded digits (1,437 training images), 100 epochs; measured about 10 minutes per seed
    "quick": (("--dataset", "digits", "--model", "small-cnn", "--epochs", "100", "--milestones", "50,75"), 600.0),
    "paper": (("--dataset", "cifar10", "--model", "preact-resnet18"), 12 * 200 * 20.0),  # 12 runs x 200 GPU epochs
}


def corruption_job(scale: str, seed: int, options: dict) -> Job:
    args, seconds = CORRUPTION[scale]
    epochs = options.get("epochs")
    extra = ["--epochs", str(epochs), "--milestones", f"{max(1, epochs // 2)}"] if epochs else []
    return Job(f"corrupt-labels/s{seed}", ("corrupt-labels", *args, "--fraction", "0.2,0.5,0.8", "--seed", str(seed),
                                           "--device", options.get("device", "auto"), *data_args(options), *extra),
               seconds * (epochs / 100 if epochs and scale == "quick" else 1.0), resume_marker="experiment.yaml")


def table2_plan(scale: str, seeds: list[int], options: dict) -> list[Job]:
    return [corruption_job(scale, seed, options) for seed in seeds]


def table2_report(scale: str, seeds: list[int], options: dict, root: Path) -> dict:
    from ..corrupt_labels import PAPER_TABLE2, aggregate_seeds

    results = [row for s in seeds for row in read_result(corruption_job(scale, s, options), root)["rows"]]
    near_chance = 0.9 * 90.0  # both datasets have ten classes
    flagged = [f"{r['method']} at {r['fraction']:.0%}: last test error {r['last_test_error']:.1f}"
               for r in results if r["last_test_error"] >= near_chance]
    rows = aggregate_seeds([{"rows": [r for r in results if r["last_test_error"] < near_chance]}])
    for row in rows:  # the report prints the paper's CIFAR-10 numbers beside any scale's, labelled as such
        row["paper"] = PAPER_TABLE2.get((row["fraction"], row["method"]))
    holds = {}
    for fraction in sorted({r["fraction"] for r in rows}):
        by = {r["method"]: r for r in rows if r["fraction"] == fraction}
        if "erm" in by and "mixup" in by:
            holds[f"{fraction:.0%} last test error"] = by["mixup"]["last_test_error"]["mean"] < by["erm"]["last_test_error"]["mean"]
            holds[f"{fraction:.0%} corrupted labels memorized less"] = (
                by["mixup"]["train_error_corrupted"]["mean"] > by["erm"]["train_error_corrupted"]["mean"])
    return {"rows": rows, "collapsed": flagged, "direction_holds": holds,
            "paper_direction": "mixup ends with a lower test error than ERM and fits fewer corrupted labels",
            "paper_source": f"{paper.SOURCE}, Table 2 (CIFAR-10, PreAct ResNet-18)"}


register(Protocol("table2", "Memorization of corrupted labels (Table 2)", table2_plan, table2_report))


# ---------------------------------------------------------------------------------------------
# Table 5: the ablations of §3.8, rows in the paper's order; the statistic is the median test error
# of the last 10 epochs. quick: the embedded digits with the small CNN (its two stages are "Layer 1,
# 2"), 15 epochs; paper: the PreAct ResNet-18 recipes in examples/table5/, both weight decays (each
# recipe's header gives the source of its numbers, and which epsilon / sigma values were chosen).
# "mix inputs + label smoothing" mixes inputs as mixup does and scores the smoothed label of the example
# weighing more (inputs-only targets); its labels are not mixed. Gaussian noise is in normalized units.

TABLE5_QUICK = (  # (row, flags), the paper's row order
    ("erm", "--alpha 0"),
    ("mixup-ac-rp", "--alpha 1"),
    ("mixup-ac-knn", "--alpha 1 --mix-pairs knn"),
    ("latent-layer1", "--alpha 1 --mix-where latent --mix-layer 1"),
    ("latent-layer2", "--alpha 1 --mix-where latent --mix-layer 2"),
    ("inputs-only-sc-knn", "--alpha 1 --mix-targets inputs-only --mix-pairs knn --mix-classes sc"),
    ("inputs-only-ac-knn", "--alpha 1 --mix-targets inputs-only --mix-pairs knn"),
    ("inputs-only-sc-rp", "--alpha 1 --mix-targets inputs-only --mix-classes sc"),
    ("inputs-only-ac-rp", "--alpha 1 --mix-targets inputs-only"),
    ("label-smoothing-0.1", "--alpha 0 --label-smoothing 0.1"),
    ("mix-inputs-label-smoothing-0.1", "--alpha 1 --mix-targets inputs-only --label-smoothing 0.1"),
    ("gaussian-noise-0.1", "--alpha 0 --input-noise 0.1"),
)
TABLE5_PAPER_ORDER = ("erm", "mixup-ac-rp", "mixup-ac-knn", "latent-layer", "inputs-only-sc-knn", "inputs-only-ac-knn",
                      "inputs-only-sc-rp", "inputs-only-ac-rp", "label-smoothing", "mix-inputs-label-smoothing",
                      "gaussian-noise")


def table5_rows(scale: str) -> list[tuple[str, tuple[str, ...]]]:
    """(row, train arguments) for every row and weight decay of the scale."""
    if scale == "quick":
        return [(f"{name}-wd1e-4", ("--epochs", "15", "--weight-decay", "1e-4", *flags.split()))
                for name, flags in TABLE5_QUICK]
    recipes = sorted((EXAMPLES / "table5").glob("*.yaml"), key=lambda p: _paper_rank(p.stem))
    if not recipes:
        raise ConfigError(f"no Table 5 recipes in '{EXAMPLES / 'table5'}'; run mixup reproduce from a checkout")
    return [(p.stem, ("--config", str(p))) for p in recipes]


def _paper_rank(stem: str) -> tuple:
    name, _, decay = stem.rpartition("-wd")
    rank = next(i for i, prefix in reversed(list(enumerate(TABLE5_PAPER_ORDER))) if name.startswith(prefix))
    return rank, name, decay


def table5_jobs(scale: str, seeds: list[int], options: dict) -> list[Job]:
    seconds = {"quick": 15.0, "paper": 200 * 20.0}[scale]
    jobs = []
    for row, args in table5_rows(scale):
        for seed in seeds:
            extra = ["--epochs", str(options["epochs"])] if options.get("epochs") else []
            jobs.append(Job(f"table5/{row}-s{seed}", ("train", *args, "--seed", str(seed), "--threads", "1",
                                                         "--device", options.get("device", "auto"),
                                                         *data_args(options), *extra), seconds, "last.pt"))
    return jobs


def table5_plan(scale: str, seeds: list[int], options: dict) -> list[Job]:
    return table5_jobs(scale, seeds, options)


def table5_report(scale: str, seeds: list[int], options: dict, root: Path) -> dict:
    rows = []
    for row, _ in table5_rows(scale):
        summaries = [read_result(job, root) for job in table5_jobs(scale, seeds, options)
                     if job.key.rsplit("-s", 1)[0] == f"table5/{row}"]
        rows.append({"row": row, "median_last10_test_error": mean_std([s["median_last10_test_error"] for s in summaries]),
                     "test_error": mean_std([s["test_error"] for s in summaries]),
                     "paper": paper.TABLE5.get(row) if scale == "paper" else None})
    by = {r["row"].rsplit("-wd", 1)[0]: r["median_last10_test_error"]["mean"] for r in rows if r["row"].endswith("wd1e-4")}
    return {"rows": rows, "paper_direction": "mixup (AC + RP) has a lower error than ERM, and than the other "
                                             "ablations of its weight decay",
            "direction_holds": {"mixup below ERM": by["mixup-ac-rp"] < by["erm"],
                                "mixup lowest": by["mixup-ac-rp"] == min(by.values())},
            "paper_source": f"{paper.SOURCE}, Table 5 (CIFAR-10, PreAct ResNet-18); at scale paper, "
                            f"{paper.TABLE5_SOURCE} (the project's copy of the paper lost Table 5's numbers)"}


register(Protocol("table5", "Ablations: what mixup's parts contribute (Table 5)", table5_plan, table5_report))


# ---------------------------------------------------------------------------------------------
# Table 4 (§3.6): UCI tables with the paper's MLP, ERM against mixup. quick: the three UCI sets that ship
# with scikit-learn; paper: examples/table4/, each set read from its original files under --data-dir
# (data/uci.py). The paper's sixth set is Phishing; Phoneme, which issue 20 names instead, runs too. A set
# whose files are absent is reported as missing, with where to get them, instead of failing the others.

UCI_RECIPES = {
    "quick": ("iris-mlp", "wine-mlp", "breast-cancer-mlp"),
    "paper": tuple(f"table4/{name}" for name in
                   ("abalone", "arcene", "arrhythmia", "htru2", "iris-uci", "phishing", "phoneme")),
}


def uci_dataset(stem: str) -> str:
    return stem.rpartition("/")[2].removesuffix("-mlp")


def uci_missing(scale: str, options: dict) -> dict[str, str]:
    """Paper-scale sets whose files are not under --data-dir: dataset -> the loader's one-line reason."""
    from ..data.uci import missing

    if scale != "paper":
        return {}
    reasons = {uci_dataset(stem): missing(uci_dataset(stem), options.get("data_dir")) for stem in UCI_RECIPES[scale]}
    return {name: why for name, why in reasons.items() if why}


def uci_present(scale: str, options: dict, absent: Optional[dict] = None) -> list[str]:
    absent = uci_missing(scale, options) if absent is None else absent
    return [stem for stem in UCI_RECIPES[scale] if uci_dataset(stem) not in absent]


def table4_jobs(scale: str, seeds: list[int], options: dict) -> list[Job]:
    extra = ["--epochs", str(options["epochs"])] if options.get("epochs") else []
    extra += data_args(options) if scale == "paper" else []
    return [Job(f"table4/{stem.rpartition('/')[2]}-{method}-s{seed}",
                ("train", "--config", str(recipe(stem, method)), "--seed", str(seed), "--threads", "1",
                 "--device", options.get("device", "auto"), *extra), 10.0, "last.pt")
            for stem in uci_present(scale, options) for method in ("erm", "mixup") for seed in seeds]


def table4_report(scale: str, seeds: list[int], options: dict, root: Path) -> dict:
    rows, holds = [], {}
    jobs, missing = table4_jobs(scale, seeds, options), uci_missing(scale, options)
    for stem in uci_present(scale, options, missing):
        name = stem.rpartition("/")[2]
        for method in ("erm", "mixup"):
            summaries = [read_result(j, root) for j in jobs if j.key.startswith(f"table4/{name}-{method}-s")]
            rows.append({"dataset": uci_dataset(stem), "method": method,
                         "test_error": mean_std([s["test_error"] for s in summaries])})
        erm, mixup = (r["test_error"]["mean"] for r in rows[-2:])
        holds[uci_dataset(stem)] = mixup <= erm
    return {"rows": rows, "missing": missing, "direction_holds": holds,
            "paper_direction": "mixup's test error is at most ERM's",
            "paper_source": f"{paper.SOURCE}, §3.6; Table 4's numbers are in no copy of the paper reachable here"}


register(Protocol("table4", "UCI tables with an MLP (§3.6)", table4_jobs, table4_report))


# ---------------------------------------------------------------------------------------------
# Figure 5 (§3.7): GAN training on the 2-D toys, standard against mixup discriminator, scored by the
# modes covered and the share of high-quality samples (the paper shows the samples only).

GAN = {"quick": (("--hidden", "128", "--iterations", "2000"), 60.0),  # per (method, seed), measured on this CPU
       "paper": ((), 2 * 3600.0)}


def gan_jobs(scale: str, seeds: list[int], options: dict) -> list[Job]:
    args, seconds = GAN[scale]
    return [Job(f"gan/{dataset}", ("gan", "--dataset", dataset, "--seeds", ",".join(map(str, seeds)), *args,
                                   "--device", options.get("device", "auto")), seconds * 2 * len(seeds), "config.yaml")
            for dataset in ("ring", "grid")]


def figure5_report(scale: str, seeds: list[int], options: dict, root: Path) -> dict:
    rows, holds = [], {}
    for job in gan_jobs(scale, seeds, options):
        result = read_result(job, root)
        for row in (r for r in result["grid"] if r["group"] == "all"):
            rows.append({"dataset": result["dataset"], "method": row["method"], "num_modes": row["num_modes"],
                         "modes": {"mean": row["modes_mean"], "std": row["modes_std"], "n": row["runs"]},
                         "high_quality": {"mean": 100 * row["high_quality_mean"], "std": 100 * row["high_quality_std"],
                                          "n": row["runs"]}})
        erm, mixup = (next(r for r in rows if (r["dataset"], r["method"]) == (result["dataset"], m)) for m in ("erm", "mixup"))
        holds[f"{result['dataset']} modes covered"] = mixup["modes"]["mean"] >= erm["modes"]["mean"]
    return {"rows": rows, "paper_direction": "the mixup GAN covers the modes at least as well as the standard GAN",
            "direction_holds": holds, "paper_source": f"{paper.SOURCE}, Figure 5 (samples only; no numbers)"}


register(Protocol("figure5", "GAN stabilization on 2-D toys (Figure 5)", lambda scale, seeds, options: gan_jobs(scale, seeds, options),
                  figure5_report))
