"""What `initlab submit --wait` draws while a study trains, without a server: a fake client answers polls.

A bar per run is a terminal's worth for a small study; for a 512-run study, redrawing every bar
ten times a second cost more CPU than the workers it waited for and megabytes of terminal output.
A large study gets one bar, a tally by status and a line for each run that ends badly, and its
output stays small however many runs it has.
"""

from __future__ import annotations

import io
import re

from rich.console import Console

from app import cli_client

ANSI = re.compile(r"\x1b\[[0-9;?]*[A-Za-z]")


def _final(run_id: int) -> tuple[str, str | None]:
    if run_id % 40 == 7:
        return "diverged", None
    if run_id % 67 == 5:
        return "failed", "CUDA error: [out of memory]\nTraceback (most recent call last):\n  ..."
    return ("cancelled", None) if run_id == 100 else ("succeeded", None)


class _Advancing:
    """A server whose study finishes over ``polls`` polls: runs end in id order, two at a time train."""

    url = "http://127.0.0.1:1"

    def __init__(self, runs: int, polls: int) -> None:
        self.runs, self.polls, self.calls = runs, polls, []

    def run(self, run_id: int, status: str, epoch: int = 0, batch: int = 0, error: str | None = None) -> dict:
        return {"id": run_id, "initializer": "he_normal", "initializer_params": None, "seed": run_id % 5,
                "status": status, "epoch": epoch, "epochs": 2, "batch": batch, "batches": 10,
                "diverged_epoch": 1 if status == "diverged" else None, "error": error}

    def study(self, poll: int) -> dict:
        ended = self.runs * poll // self.polls
        runs = []
        for run_id in range(1, self.runs + 1):
            if run_id <= ended:
                status, error = _final(run_id)
                runs.append(self.run(run_id, status, 2 if status != "diverged" else 1, 10, error))
            else:
                runs.append(self.run(run_id, "running", 1, 5) if run_id <= ended + 2 else self.run(run_id, "queued"))
        return {"id": 9, "runs": runs}

    def json(self, method: str, path: str, *args):
        self.calls.append((method, path, args))
        return self.study(len(self.calls))


def _wait(monkeypatch, runs: int, polls: int, interval: float = 0.05, height: int = 60):
    """wait_for's output on a terminal (escape codes and all) and its text as last drawn, plus the client."""
    screen = io.StringIO()
    monkeypatch.setattr(cli_client, "err", Console(file=screen, force_terminal=True, width=120, height=height))
    client = _Advancing(runs, polls)
    study = client.study(0)
    finished = cli_client.wait_for(client, study, interval=interval, timeout=0)
    assert finished == client.study(polls)
    text = ANSI.sub("", screen.getvalue()).replace("\r", "\n")
    return screen.getvalue(), [line.rstrip() for line in text.splitlines() if line.strip()], client


def test_a_large_study_s_wait_draws_one_bar_a_tally_and_its_bad_runs(monkeypatch):
    written, lines, client = _wait(monkeypatch, runs=200, polls=20)
    assert len(written.encode()) < 50_000, f"{len(written.encode())} bytes for 20 polls"
    # polling is the only network cost: one GET of the study per poll, nothing else
    assert client.calls == [("GET", "/api/studies/9", ())] * 20
    assert not any(line.startswith("run  150 ") for line in lines)  # no bar per run
    # epochs done of all epochs, as the bars per run count them: a run that diverged stopped at its epoch 1
    assert lines[-2].startswith("study 9 ") and "99% 395 of 400 epochs" in lines[-2]
    assert lines[-1] == "0 queued · 0 running · 191 succeeded · 5 diverged · 3 failed · 1 cancelled"
    assert lines[1] == "198 queued · 2 running · 0 succeeded · 0 diverged · 0 failed · 0 cancelled"  # before a poll
    assert "98 queued · 2 running · 94 succeeded · 3 diverged · 2 failed · 1 cancelled" in lines  # half way
    assert "run    7 He normal seed 2 diverged at epoch 1" in lines and "run  100 He normal seed 0 cancelled" in lines
    # the error's first line, brackets and all (no markup), not its traceback
    assert "run  139 He normal seed 4 failed: CUDA error: [out of memory]" in lines
    assert not any("Traceback" in line for line in lines)
    printed = [line for line in lines if line.startswith("run ")]
    ended_badly = [run_id for run_id in range(1, 201) if _final(run_id)[0] != "succeeded"]
    assert [int(line.split()[1]) for line in printed] == ended_badly  # each once, in the order they ended

def test_a_large_study_s_output_does_not_grow_with_its_runs(monkeypatch):
    small, _, _ = _wait(monkeypatch, runs=40, polls=10)
    large, _, _ = _wait(monkeypatch, runs=400, polls=10)
    # a few more lines for its runs that ended badly, not a frame a hundred lines longer
    assert len(large.encode()) < len(small.encode()) + 10_000


def test_a_small_study_keeps_a_bar_per_run(monkeypatch):
    _, lines, client = _wait(monkeypatch, runs=8, polls=4)
    assert len(client.calls) == 4
    final = lines[-8:]
    assert [line[:9] for line in final] == [f"run {run_id:>4} " for run_id in range(1, 9)]
    assert all("epoch 2 of 2" in line for line in final if "succeeded" in line)
    assert "failed" in final[4] and "diverged at epoch 1" in final[6] and "epoch 1 of 2" in final[6]
    assert sum("succeeded" in line for line in final) == 6
    assert not any("queued ·" in line for line in lines)  # no tally: the bars say it all
    assert any("queued" in line for line in lines) and any("running" in line for line in lines)


def test_twenty_runs_get_a_bar_each_and_twenty_one_one_bar(monkeypatch):
    _, lines, _ = _wait(monkeypatch, runs=20, polls=2, height=40)
    assert sum(line.startswith("run ") and "━" in line for line in lines[-20:]) == 20
    _, lines, _ = _wait(monkeypatch, runs=21, polls=2, height=40)
    assert lines[-2].startswith("study 9 ")
    assert lines[-1] == "0 queued · 0 running · 19 succeeded · 1 diverged · 1 failed · 0 cancelled"
    assert not any("━" in line for line in lines if line.startswith("run "))
