"""`mixup reproduce`: a table or figure of the paper as one resumable command.

    plan = make_plan(["table1", "table3"], "quick", seeds=[0, 1, 2], root=Path("runs/reproduce-quick"))
    run_plan(plan, parallel=2)            # runs what is not done yet; a stopped call continues
    reports = make_reports(plan)          # plain data; markdown(name, report) renders one

Every run is an ordinary `mixup` command in its own folder under the root, so each can be inspected,
evaluated or resumed by hand as well.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Callable, Optional

from ..errors import ConfigError
from .jobs import Job, check_settings, estimate, run_jobs, unique
from .markdown import markdown
from .tables import PAPER_ORDER, PROTOCOLS, SCALES


@dataclasses.dataclass
class Plan:
    tables: list[str]
    scale: str
    seeds: list[int]
    root: Path
    options: dict
    jobs: list[Job]


def make_plan(tables: list[str], scale: str, seeds: list[int], root: Path, data_dir: Optional[str] = None,
              device: str = "auto", epochs: Optional[int] = None) -> Plan:
    if scale not in SCALES:
        raise ConfigError(f"scale '{scale}' is not one of {', '.join(SCALES)}")
    if not seeds:
        raise ConfigError("--seeds is empty; give at least one seed, e.g. 0,1,2")
    names = list(dict.fromkeys(PROTOCOLS.get(name).name for name in tables))  # refuses unknown names
    options = {"root": root.resolve(), "data_dir": data_dir, "device": device, "epochs": epochs}
    jobs = unique([job for name in names for job in PROTOCOLS.get(name).plan(scale, seeds, options)])
    check_settings(jobs, root.resolve())
    return Plan(names, scale, seeds, root.resolve(), options, jobs)


def run_plan(plan: Plan, parallel: int, on_done: Optional[Callable[[Job, float], None]] = None) -> None:
    plan.root.mkdir(parents=True, exist_ok=True)
    run_jobs(plan.jobs, plan.root, parallel, on_done)


def make_reports(plan: Plan) -> dict[str, dict]:
    """Each table's report, also written as <root>/<table>.json and <root>/<table>.md."""
    reports = {}
    for name in plan.tables:
        protocol = PROTOCOLS.get(name)
        report = {"table": name, "title": protocol.title, "scale": plan.scale, "seeds": plan.seeds,
                  **protocol.report(plan.scale, plan.seeds, plan.options, plan.root)}
        (plan.root / f"{name}.json").write_text(json.dumps(report, indent=2) + "\n")
        (plan.root / f"{name}.md").write_text(markdown(report))
        reports[name] = report
    return reports


__all__ = ["PAPER_ORDER", "Plan", "PROTOCOLS", "SCALES", "estimate", "make_plan", "make_reports", "markdown", "run_plan"]
