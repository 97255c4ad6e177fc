"""The summary table ``initlab submit --wait`` prints when a study ends: per initializer, over seeds.

Rendered from GET /api/studies/{id}/summary, the verdict the study page shows, in a grid study
cell by cell (groups of different cells differ in more than their initial weights).
"""

from __future__ import annotations

from typing import Any

from rich import box
from rich.table import Table


def noun(count: int, word: str) -> str:
    """``word`` for one, ``word`` + s for any other count: "1 run", "0 runs", "2 runs"."""
    return word if count == 1 else f"{word}s"


def plural(count: int, word: str) -> str:
    """The count and its noun, for every count the CLI prints: "1 run queued", not "1 runs"."""
    return f"{count} {noun(count, word)}"


def _mean_std(stat: dict[str, Any] | None, percent: bool = True, digits: int = 2) -> str:
    mean = (stat or {}).get("mean")
    if not isinstance(mean, (int, float)):
        return "–"
    scale = 100.0 if percent else 1.0
    text = f"{mean * scale:.{digits}f}"
    if (stat or {}).get("n", 0) > 1 and isinstance(stat.get("std"), (int, float)):
        text += f" ± {stat['std'] * scale:.{digits}f}"
    return text + (" %" if percent else "")


def summary_table(summary: dict[str, Any]) -> Table:
    """Per initializer, over seeds: final and best validation accuracy, epoch of the best, diverged runs.

    A grid study's groups come cell by cell, a section each, with ★ on each cell's leader:
    groups of different cells differ in more than their initial weights.
    """
    table = Table(title=f"study {summary['study_id']}: {summary['name']} ({summary['status']})", title_justify="left",
                  box=box.SIMPLE_HEAD)
    table.add_column("initializer")
    for heading in ("runs", "final val acc", "best val acc", "best epoch", "diverged"):
        table.add_column(heading, justify="right", no_wrap=True)
    cells: dict[str | None, list[dict[str, Any]]] = {}
    for group in summary["groups"]:
        cells.setdefault(group.get("cell"), []).append(group)
    for number, groups in enumerate(cells.values()):
        if number:
            table.add_section()
        for group in groups:
            row = group["table"]
            name = group["label"] + (" ★" if row.get("leader") else "")
            table.add_row(name, str(row["runs"]), _mean_std(row["final_val_accuracy"]),
                          _mean_std(row["best_val_accuracy"]), _mean_std(row["best_epoch"], percent=False, digits=1),
                          str(row["diverged"]))
    lead = "per grid cell, " if len(cells) > 1 else ""
    table.caption = (f"mean ± sample std (n − 1) over seeds, none for one seed; ★ {lead}highest mean final val acc "
                     "over finished runs, on the seeds all initializers finished (none when all runs diverged or the "
                     "best means are equal); a diverged run's last finite "
                     "accuracy counts in the means, NaN/∞ never")
    return table
