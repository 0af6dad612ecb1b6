"""Markdown renderings of the reproduce reports: our numbers (mean ± std over seeds) beside the paper's."""
from __future__ import annotations

from typing import Callable

from ..seeds import format_mean_std as pm

RENDERERS: dict[str, Callable[[dict], list[str]]] = {}


def renders(name: str):
    def decorate(function):
        RENDERERS[name] = function
        return function
    return decorate


def table(header: list[str], rows: list[list]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    return lines + ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]


def verdict(holds) -> str:
    if isinstance(holds, dict):
        return "; ".join(f"{key}: {verdict(value)}" for key, value in holds.items())
    return {True: "holds", False: "does not hold", None: "not measured"}[holds]


def markdown(report: dict) -> str:
    seeds = ", ".join(map(str, report["seeds"]))
    lines = [f"## {report['title']}", "",
             f"Scale `{report['scale']}`, seeds {seeds} ({len(report['seeds'])} runs per cell); mean ± standard "
             f"deviation over seeds; errors in %. The paper's numbers: {report['paper_source']}.", ""]
    lines += RENDERERS[report["table"]](report)
    lines += ["", f"The paper's direction ({report['paper_direction']}): {verdict(report['direction_holds'])}."]
    if report.get("collapsed"):
        lines += ["", "Runs left out of the means because they ended near chance (collapsed or diverged): "
                  + "; ".join(report["collapsed"]) + "."]
    return "\n".join(lines) + "\n"


@renders("table1")
def _table1(report: dict) -> list[str]:
    return table(["method", "recipe", "test error (last epoch)", "best epoch", "median of last 10", "paper",
                  "seconds per run"],
                 [[r["method"], f"`{r['recipe']}`", pm(r["test_error"]), pm(r["best_test_error"]),
                   pm(r["median_last10_test_error"]), r["paper_test_error"], pm(r["seconds"], 0)]
                  for r in report["rows"]])


@renders("table3")
def _table3(report: dict) -> list[str]:
    return table(["setting", "method", "attack (ε = 4/255)", "top-1 error", "top-5 error", "clean top-1",
                  "paper top-1", "paper top-5"],
                 [[r["setting"], r["method"], r["attack"].upper().replace("IFGSM", "I-FGSM"), pm(r["top1_error"], 1),
                   pm(r["top5_error"], 1), pm(r["clean_top1_error"], 1), r["paper_top1_error"], r["paper_top5_error"]]
                  for r in report["rows"]])


@renders("figure2")
def _figure2(report: dict) -> list[str]:
    lams = report["lambda"]
    lines = table(["method", *[f"miss % at λ={lam:g}" for lam in lams], "ECE %", "NLL"],
                  [[r["method"], *[pm(s) for s in r["miss_percent"]], pm(r["ece_percent"]), pm(r["nll"], 3)]
                   for r in report["rows"]])
    lines += [""] + table(["method", *[f"‖∇x‖ at λ={lam:g}" for lam in lams]],
                          [[r["method"], *[pm(s, 4) for s in r["grad_norm"]]] for r in report["rows"]])
    return lines + ["", f"{report['pairs']} random pairs of training examples; a miss is a prediction that is "
                        "neither label of the pair (Figure 2)."]


@renders("table2")
def _table2(report: dict) -> list[str]:
    def paper(row, k):
        return "-" if row["paper"] is None else row["paper"][k]

    return table(["corruption", "method", "test error best", "last", "train error real", "corrupted",
                  "paper best", "paper last", "paper real", "paper corrupted"],
                 [[f"{r['fraction']:.0%}", r["method"], pm(r["best_test_error"], 1), pm(r["last_test_error"], 1),
                   pm(r["train_error_real"], 1), pm(r["train_error_corrupted"], 1),
                   *[paper(r, k) for k in range(4)]] for r in report["rows"]])


@renders("table4")
def _table4(report: dict) -> list[str]:
    lines = table(["dataset", "method", "test error"],
                  [[r["dataset"], r["method"], pm(r["test_error"])] for r in report["rows"]])
    return lines + [f"\nNot run, `{name}`: {why}" for name, why in report.get("missing", {}).items()]


@renders("table5")
def _table5(report: dict) -> list[str]:
    papers = any(r.get("paper") is not None for r in report["rows"])  # --scale paper: ERM and mixup's
    return table(["row", "median test error of the last 10 epochs", "last epoch"] + ["paper"] * papers,
                 [[r["row"], pm(r["median_last10_test_error"]), pm(r["test_error"])]
                  + ["-" if r.get("paper") is None else r["paper"]] * papers for r in report["rows"]])


@renders("figure5")
def _figure5(report: dict) -> list[str]:
    return table(["dataset", "method", "modes covered (of)", "high-quality samples %"],
                 [[r["dataset"], r["method"], f"{pm(r['modes'], 1)} (of {r['num_modes']})", pm(r["high_quality"], 1)]
                  for r in report["rows"]])
