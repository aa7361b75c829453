"""A comparison of fine-tuning runs made elsewhere (a sweep of `python -m finetune` jobs), from their metrics.json."""
from __future__ import annotations

import json
import sys
from pathlib import Path

from pretrain import StrataError

from .report import OUTPUTS, result_row, write_outputs


def gather_comparison(sweep_dir: str | Path, run_dir: Path) -> list[dict]:
    """The comparison of runs made elsewhere: every `python -m finetune` job under `sweep_dir` (a multirun folder,
    local or SLURM) that wrote its metrics.json becomes a row; results.csv, report.md and the plot go to `run_dir`.

    The jobs must fine-tune on one data set from one artifact (scratch jobs may have none), one per
    (label budget, seed, mode). Jobs without metrics.json (failed, or still running) are named on stderr.
    """
    sweep_dir = Path(sweep_dir)
    if not sweep_dir.is_dir():
        raise StrataError(f"gather={sweep_dir}: no such folder (expected the multirun folder of `python -m finetune -m ...`)")
    existing = [str(run_dir / n) for n in OUTPUTS if (run_dir / n).exists()]
    if existing:
        raise StrataError(f"{existing[0]} already exists: an earlier result is never overwritten")
    jobs = sorted({p.parent.parent for p in sweep_dir.rglob(".hydra/config.yaml")} | {p.parent for p in sweep_dir.rglob("metrics.json")})
    rows, where, data_sets, artifacts, unfinished, classes = [], {}, set(), set(), [], None
    for job in jobs:
        path = job / "metrics.json"
        if not path.is_file():
            unfinished.append(str(job))
            continue
        try:
            m = json.loads(path.read_text())
            row = result_row(m.get("budget", m.get("labels")), m)
        except (json.JSONDecodeError, UnicodeDecodeError) as err:
            raise StrataError(f"{path}: not valid JSON ({err})") from None
        except (KeyError, TypeError, AttributeError) as err:
            raise StrataError(f"{path}: not the metrics of a `python -m finetune` run (no field {err})") from None
        key = (row["budget"], row["seed"], row["mode"])
        if key in where:
            raise StrataError(f"{where[key]} and {job} are both labels={key[0]}, seed={key[1]}, mode={key[2]}: gather one run of each")
        where[key] = job
        data_sets.add(m.get("data"))
        classes = m.get("classes", classes)
        if m.get("pretrained"):
            artifacts.add(str(m["pretrained"]))
        rows.append(row)
    if not rows:
        raise StrataError(f"gather={sweep_dir}: no job there has a metrics.json of `python -m finetune`")
    for what, found in (("data sets", data_sets), ("artifacts", artifacts)):
        if len(found) > 1:
            raise StrataError(f"gather={sweep_dir}: the jobs use different {what} ({', '.join(sorted(map(str, found)))}); "
                              "gather the jobs of one comparison")
    if unfinished:
        print(f"{len(unfinished)} of {len(jobs)} jobs have no metrics.json (failed or still running): {', '.join(unfinished)}",
              file=sys.stderr)
    write_outputs(rows, run_dir, title=f"{data_sets.pop()}, {len(rows)} runs gathered from {sweep_dir}",
                  artifact=artifacts.pop() if artifacts else "none (scratch only)", classes=classes)
    return rows
