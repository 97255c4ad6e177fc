"""What `initlab submit` sends and shows, without a server: requests are caught in process.

A run's progress line names its initializer as the rest of initlab does (a custom initializer's
params are words and nulls, which once crashed the line after the study was created), and a JSON
export handed back is submitted as the study it records.
"""

from __future__ import annotations

import io
import json
import urllib.request

import pytest
from rich.console import Console
from typer.testing import CliRunner

from app import cli_client
from app.cli import cli

SEED_001_CLIP = {"distribution": "truncated_normal", "mode": "fan_in", "scale": 2, "clip_sigma": 2}


def _run(run_id: int, initializer: str, params, status: str = "succeeded") -> dict:
    return {"id": run_id, "initializer": initializer, "initializer_params": params, "seed": 3, "status": status,
            "epoch": 2, "epochs": 2}


class _Finished:
    """A server whose study is already finished: one poll, then wait_for returns."""

    url = "http://127.0.0.1:1"

    def __init__(self, study: dict) -> None:
        self.study = study

    def json(self, method: str, path: str, *args):
        return self.study


def test_a_custom_initializer_s_progress_line_is_its_label(capsys, monkeypatch):
    monkeypatch.setattr(cli_client, "err", Console(stderr=True, width=200))  # room for the whole line
    runs = [_run(1, "custom", SEED_001_CLIP), _run(2, "custom", {"distribution": "normal", "clip_sigma": None}),
            _run(3, "random_normal", {"stddev": 0.01}), _run(4, "he_normal", None), _run(5, "he_normal", {})]
    study = {"id": 9, "runs": runs}
    assert cli_client.wait_for(_Finished(study), study, interval=0.1, timeout=0) == study
    lines = capsys.readouterr().err.splitlines()
    shown = {run["id"]: next(line for line in lines if line.startswith(f"run    {run['id']} ")) for run in runs}
    assert shown[1].startswith("run    1 custom: truncated normal, fan_in, scale 2, clip 2σ seed 3")
    assert shown[2].startswith("run    2 custom: normal, fan_in, scale 1 seed 3")
    assert shown[3].startswith("run    3 Random normal (stddev=0.01) seed 3")
    assert shown[4].startswith("run    4 He normal seed 3") and shown[5].startswith("run    5 He normal seed 3")
    assert all("epoch 2 of 2" in line and "succeeded" in line for line in shown.values())


@pytest.fixture
def posted(monkeypatch):
    """The bodies the CLI POSTs; each is answered with a one-run study."""
    bodies = []

    def urlopen(request, timeout):
        bodies.append(json.loads(request.data))
        return io.BytesIO(json.dumps({"id": 17, "runs": [{"id": 1}]}).encode())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return bodies


SPEC = {"name": "he vs clip", "dataset": {"name": "fashion_mnist", "train_samples": 300},
        "initializers": [{"id": "custom", "params": SEED_001_CLIP}, {"id": "he_normal", "params": {}}], "seeds": [0]}


def _submit(tmp_path, document: dict):
    path = tmp_path / "export.json"
    path.write_text(json.dumps(document))
    return CliRunner().invoke(cli, ["submit", str(path), "--url", "http://127.0.0.1:1"])


def test_a_json_export_is_submitted_as_the_spec_it_records(tmp_path, posted):
    export = {"format": "initlab-study-export", "version": 1,
              "study": {"id": 12, "name": "he vs clip", "status": "succeeded", "created_at": "2025-01-01T00:00:00",
                        "spec": SPEC},
              "runs": [{"id": 40, "initializer": "custom", "metrics": [], "layers": []}]}
    result = _submit(tmp_path, export)
    assert result.exit_code == 0, result.output
    assert posted == [SPEC]
    assert result.stderr.strip() == f"{tmp_path / 'export.json'}: an initlab export; re-submitting the spec of " \
                                    'exported study 12 ("he vs clip")'
    assert "study 17 created: 1 run queued" in result.stdout


@pytest.mark.parametrize("document", [
    {"format": "csv", "study": {"spec": SPEC}},  # not our format: the server says what is wrong
    {"format": "initlab-study-export", "study": {"id": 1}},  # no spec to submit
    {"format": "initlab-study-export", "study": {"spec": "he_normal"}},
    SPEC,
])
def test_anything_else_is_submitted_as_written(tmp_path, posted, document):
    result = _submit(tmp_path, document)
    assert result.exit_code == 0, result.output
    assert posted == [document] and "export" not in result.stderr
