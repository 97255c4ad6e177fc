"""What ``initlab submit --wait`` shows while a study trains (app/cli_client.py polls, this draws).

A small study gets a bar per run; a larger one gets one bar over all its epochs, a one-line tally
by status, and a line printed, once, for each run that ends badly. Redrawing a bar per run of a
512-run study ten times a second took more CPU than the workers it waited for and wrote megabytes
to the terminal; this display's size, and the cost of each redraw, no longer grow with the study.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.text import Text

from app.domain.registry import label

FINISHED_OK = {"succeeded", "diverged"}
TERMINAL = FINISHED_OK | {"failed", "cancelled"}
ENDED_BADLY = {"failed", "diverged", "cancelled"}
STATUS_STYLE = {"queued": "dim", "running": "cyan", "succeeded": "green", "diverged": "yellow", "failed": "red",
                "cancelled": "magenta"}
BAR_PER_RUN_UP_TO = 20  # a terminal's worth of bars; above it, one bar for the whole study
REFRESH_PER_SECOND = 2  # redraws of the elapsed clock; a poll's news is drawn when it comes


def describe(run: dict[str, Any]) -> str:
    """The domain's own label: a custom initializer's params are words and nulls too, not only numbers.
    Escaped, since Rich reads a task's description as markup."""
    return f"run {run['id']:>4} {escape(label(run['initializer'], run.get('initializer_params')))} seed {run['seed']}"


def epochs_done(run: dict[str, Any]) -> tuple[float, int]:
    """(epochs done, of how many): a succeeded run is whole, a running one counts its batches."""
    status, epoch, epochs = run["status"], run["epoch"], max(1, run["epochs"])
    done = float(epochs) if status == "succeeded" else float(epoch)
    if status == "running" and run.get("batches"):
        done = min(epochs, epoch + run["batch"] / run["batches"])
    return done, epochs


def _note(run: dict[str, Any]) -> str:
    status = run["status"]
    return status + (f" at epoch {run['diverged_epoch']}" if status == "diverged" and run.get("diverged_epoch") else "")


def progress_state(run: dict[str, Any]) -> dict[str, Any]:
    done, epochs = epochs_done(run)
    style = STATUS_STYLE.get(run["status"], "")
    return {"total": epochs, "completed": done, "epochs": f"epoch {run['epoch']} of {epochs}",
            "status": f"[{style}]{escape(_note(run))}[/{style}]"}


def tally(runs: Iterable[dict[str, Any]]) -> Text:
    """"0 queued · 2 running · 500 succeeded · 4 diverged · 2 failed · 1 cancelled": every status, always."""
    counts = dict.fromkeys(STATUS_STYLE, 0)
    for run in runs:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    return Text(" · ").join(Text(f"{count} {status}", style=STATUS_STYLE.get(status, ""))
                            for status, count in counts.items())


class _WithTally(Progress):
    """A Progress that draws a line of text under its bars."""

    def __init__(self, *columns, **options) -> None:
        self.tally = Text()  # before Progress's own set-up, which renders once
        super().__init__(*columns, **options)

    def get_renderables(self):
        yield self.make_tasks_table(self.tasks)
        yield self.tally


class StudyDisplay:
    """``with StudyDisplay(console, study) as display: display.update(study["runs"])`` after each poll."""

    def __init__(self, console: Console, study: dict[str, Any], per_run_up_to: int = BAR_PER_RUN_UP_TO) -> None:
        self.per_run = len(study["runs"]) <= per_run_up_to
        elapsed = TimeElapsedColumn()
        if self.per_run:
            columns = (TextColumn("{task.description}"), BarColumn(), TextColumn("{task.fields[epochs]}"),
                       TextColumn("{task.fields[status]}"), elapsed)
        else:
            columns = (TextColumn("{task.description}"), BarColumn(), TaskProgressColumn(),
                       TextColumn("{task.fields[epochs]}"), elapsed)
        kind = Progress if self.per_run else _WithTally
        self.progress = kind(*columns, console=console, transient=False, refresh_per_second=REFRESH_PER_SECOND)
        self.tasks: dict[Any, Any] = {}
        self.reported: set[Any] = set()  # runs whose bad end has been printed
        self.study_id = study.get("id")
        self.runs = study["runs"]

    def __enter__(self) -> StudyDisplay:
        if self.per_run:
            self.tasks = {run["id"]: self.progress.add_task(describe(run), **progress_state(run)) for run in self.runs}
        else:
            self.overall = self.progress.add_task(f"study {self.study_id}", total=1, epochs="")
        self._show(self.runs)  # before the first frame: no empty bar and tally
        self.progress.__enter__()
        return self

    def __exit__(self, *exc_info) -> None:
        self.progress.__exit__(*exc_info)

    def update(self, runs: list[dict[str, Any]]) -> None:
        """Show a poll's runs, and draw them now: the clock alone redraws only twice a second."""
        self._show(runs)
        self.progress.refresh()

    def _show(self, runs: list[dict[str, Any]]) -> None:
        if self.per_run:
            for run in runs:
                self.progress.update(self.tasks[run["id"]], **progress_state(run))
        else:
            done, total, ended_badly = 0.0, 0.0, []
            for run in runs:
                run_done, run_epochs = epochs_done(run)
                done, total = done + run_done, total + run_epochs
                if run["status"] in ENDED_BADLY and run["id"] not in self.reported:
                    self.reported.add(run["id"])
                    ended_badly.append(run)
            self.progress.tally = tally(runs)  # type: ignore[attr-defined]
            self.progress.update(self.overall, total=max(total, 1.0), completed=done,
                                 epochs=f"{done:.0f} of {total:.0f} epochs")
            if ended_badly:  # one print, above the bar: the display is redrawn once, not once a line
                self.progress.console.print("\n".join(map(bad_end, ended_badly)), highlight=False, soft_wrap=True)


def bad_end(run: dict[str, Any]) -> str:
    """"run   12 He normal seed 3 failed: worker lost", as markup: a line for a run that ended badly."""
    style = STATUS_STYLE.get(run["status"], "")
    error = str(run.get("error") or "").strip().splitlines()
    return f"{describe(run)} [{style}]{escape(_note(run))}[/{style}]" + (f": {escape(error[0])}" if error else "")
