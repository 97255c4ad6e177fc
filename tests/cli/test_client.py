"""`initlab submit` and `initlab export` against a real `initlab up` (API + Celery worker) with an API token.

Tiny real trainings: 300 Fashion-MNIST images, 2 epochs. The CLI finds the server and the token
the way a user's shell gives them (INITLAB_PORT, INITLAB_API_TOKEN) unless told otherwise.
"""

from __future__ import annotations

import csv
import json
import signal
import subprocess
import time
import zipfile
from pathlib import Path

import pytest

from support import processes

pytestmark = pytest.mark.slow

TOKEN = "cli-test-token"
TINY = """\
name: cli tiny
dataset: {name: fashion_mnist, train_samples: 300, validation_samples: 200}
model: {hidden_units: [16]}
training: {epochs: %d, batch_size: 64}
initializers:
  - glorot_uniform
  - {id: random_normal, params: {stddev: 0.01}}
seeds: [0]
"""


@pytest.fixture(scope="module")
def server(data_dir, tmp_path_factory):
    state = tmp_path_factory.mktemp("cli")
    env = {"INITLAB_STATE_DIR": str(state / "state"), "INITLAB_PORT": str(processes.free_port()),
           "INITLAB_DATA_DIR": str(data_dir), "INITLAB_WORKER_CONCURRENCY": "1", "INITLAB_API_TOKEN": TOKEN}
    process = processes.start(["up"], env, state / "up.log")
    base = f"http://127.0.0.1:{env['INITLAB_PORT']}"
    try:
        processes.wait_until_up(base, timeout=90)
        yield env, base
    finally:
        processes.stop(process, signal.SIGINT)


def _cli(args: list[str], env: dict[str, str], cwd: Path | None = None, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([*processes.INITLAB, *args], cwd=cwd or processes.ROOT, env=processes.child_env({**env, "COLUMNS": "120"}),
                          capture_output=True, text=True, timeout=timeout)


def _get(base: str, path: str):
    import urllib.request

    request = urllib.request.Request(base + path, headers={"Authorization": f"Bearer {TOKEN}"})
    with urllib.request.urlopen(request, timeout=10) as response:
        return json.loads(response.read())


def test_submit_waits_prints_the_table_and_export_downloads(server, tmp_path):
    env, base = server
    study_file = tmp_path / "study.yaml"
    study_file.write_text(TINY % 2)
    result = _cli(["submit", str(study_file), "--wait", "--interval", "0.5"], env)  # URL and token from the env
    assert result.returncode == 0, result.stdout + result.stderr
    study_id = int(result.stdout.split("study ", 1)[1].split()[0])
    assert f"{base}/studies/{study_id}" in result.stdout
    assert "epoch 2 of 2" in result.stderr and "succeeded" in result.stderr, result.stderr

    summary = _get(base, f"/api/studies/{study_id}/summary?runs=false")
    assert f"study {study_id}: cli tiny (succeeded)" in result.stdout
    assert [group["key"] for group in summary["groups"]] == ["glorot_uniform", "random_normal(stddev=0.01)"]
    for group in summary["groups"]:
        final = group["table"]["final_val_accuracy"]["mean"]
        line = next(line for line in result.stdout.splitlines() if line.strip().startswith(group["label"]))
        assert f"{final * 100:.2f} %" in line and line.split()[-1] == "0", line  # no run diverged
    assert "2 succeeded" in result.stdout

    target = tmp_path / "out.csv"
    exported = _cli(["export", str(study_id), "--format", "csv", "-o", str(target), "--url", base, "--token", TOKEN], {})
    assert exported.returncode == 0, exported.stderr
    rows = list(csv.DictReader(target.open()))
    losses = {(r["run_id"], r["epoch"]) for r in rows if r["table"] == "metrics" and r["statistic"] == "val_loss"}
    assert len(losses) == 2 * 2 and {r["table"] for r in rows} == {"metrics", "layer_stats", "histogram"}

    board = _cli(["export", str(study_id), "-f", "tensorboard"], env, cwd=tmp_path)  # the server's file name, here
    assert board.returncode == 0, board.stderr
    written = tmp_path / f"initlab-study-{study_id}-cli-tiny.zip"
    with zipfile.ZipFile(written) as archive:
        folders = {Path(name).parent.name for name in archive.namelist() if "tfevents" in name}
    assert len(folders) == 2 and all(folder.endswith("_seed0") for folder in folders)
    assert not list(tmp_path.glob("*.part"))

    missing = _cli(["export", "99999"], env)
    assert missing.returncode == 1 and "study 99999 not found" in missing.stderr

    kept = subprocess.run([*processes.INITLAB, "delete", str(study_id)], input="n\n", cwd=processes.ROOT,
                          env=processes.child_env(env), capture_output=True, text=True, timeout=60)
    assert kept.returncode == 1 and _get(base, f"/api/studies/{study_id}")["id"] == study_id
    deleted = _cli(["delete", str(study_id), "--yes"], env)
    assert deleted.returncode == 0 and f"deleted study {study_id}" in deleted.stderr, deleted.stderr
    assert study_id not in [study["id"] for study in _get(base, "/api/studies")]
    gone = _cli(["delete", str(study_id), "-y"], env)
    assert gone.returncode == 1 and f"study {study_id} not found" in gone.stderr


def test_a_custom_initializer_s_study_is_followed_and_its_json_export_submits_it_again(server, tmp_path):
    env, base = server
    study_file = tmp_path / "clip.json"  # the README's seed-001 "clip at 2σ" recipe: params that are words
    study_file.write_text(json.dumps({
        "name": "cli clip", "dataset": {"name": "fashion_mnist", "train_samples": 300, "validation_samples": 200},
        "model": {"hidden_units": [16]}, "training": {"epochs": 1, "batch_size": 64}, "seeds": [0],
        "initializers": [{"id": "custom", "params": {"distribution": "truncated_normal", "mode": "fan_in",
                                                     "scale": 2, "clip_sigma": 2}}]}))
    result = _cli(["submit", str(study_file), "--wait", "--interval", "0.5"], env)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "custom: truncated normal, fan_in, scale 2, clip 2σ seed 0" in result.stderr, result.stderr
    study_id = int(result.stdout.split("study ", 1)[1].split()[0])

    exported = tmp_path / "export.json"
    assert _cli(["export", str(study_id), "-f", "json", "-o", str(exported)], env).returncode == 0
    again = _cli(["submit", str(exported), "--wait", "--interval", "0.5"], env)  # waits: the worker is free after
    assert again.returncode == 0, again.stdout + again.stderr
    assert f'the spec of exported study {study_id} ("cli clip")' in again.stderr, again.stderr
    copy = int(again.stdout.split("study ", 1)[1].split()[0])
    assert copy != study_id and _get(base, f"/api/studies/{copy}")["spec"] == _get(base, f"/api/studies/{study_id}")["spec"]


def test_refusals_are_said_plainly(server, tmp_path):
    env, base = server
    bad = tmp_path / "bad.yaml"
    bad.write_text("name: bad\ntraining: {epochs: 0}\ninitializers: [he_magic]\n")
    result = _cli(["submit", str(bad)], env)
    assert result.returncode == 2
    assert "training.epochs: Input should be greater than or equal to 1" in result.stderr
    assert "initializers.0.id: Value error, unknown initializer 'he_magic'" in result.stderr

    good = tmp_path / "good.json"
    good.write_text(json.dumps({"initializers": ["he_normal"], "training": {"epochs": 1}}))
    anonymous = _cli(["submit", str(good), "--url", base], {"INITLAB_API_TOKEN": ""})
    assert anonymous.returncode == 1 and "API token" in anonymous.stderr

    broken = tmp_path / "broken.yaml"
    broken.write_text("name: [unclosed\n")
    result = _cli(["submit", str(broken)], env)
    assert result.returncode == 2 and "not valid YAML" in result.stderr and "[unclosed" in result.stderr
    assert all(study["name"] not in ("bad", "untitled study") for study in _get(base, "/api/studies")), "nothing was created"


def test_wait_exits_1_when_a_run_does_not_finish(server, tmp_path):
    env, base = server
    study_file = tmp_path / "long.yaml"
    study_file.write_text(TINY % 40)
    before = {study["id"] for study in _get(base, "/api/studies")}
    waiting = subprocess.Popen([*processes.INITLAB, "submit", str(study_file), "--wait", "--interval", "0.3"],
                               cwd=processes.ROOT, env=processes.child_env(env), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        study_id = processes.wait_for(lambda: ({s["id"] for s in _get(base, "/api/studies")} - before or {None}).pop(),
                                      30, what="the study to exist")
        time.sleep(1.0)
        import urllib.request

        request = urllib.request.Request(f"{base}/api/studies/{study_id}/cancel", method="POST",
                                         headers={"Authorization": f"Bearer {TOKEN}"})
        urllib.request.urlopen(request, timeout=10).close()
        stdout, stderr = waiting.communicate(timeout=120)
    finally:
        if waiting.poll() is None:
            waiting.kill()
    assert waiting.returncode == 1, stdout + stderr
    assert "cancelled" in stdout and "some runs did not finish" in stderr


def test_the_example_study_is_valid():
    from app.cli_client import load_study
    from app.schemas.studies import StudyCreate

    study = StudyCreate.model_validate(load_study(processes.ROOT / "examples" / "study.yaml"))
    assert len(study.initializers) * len(study.seeds) <= 8 and study.training.epochs <= 10


def test_writes_go_out_as_json_reads_without_a_content_type(monkeypatch):
    # The server takes a write's body as application/json only (415 otherwise).
    import io
    import urllib.request

    from app.cli_client import Client

    sent = []

    def urlopen(request, timeout):
        sent.append((request.get_method(), request.get_header("Content-type"), request.data))
        return io.BytesIO(b"{}")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    client = Client("http://127.0.0.1:1", token=None)
    client.json("POST", "/api/studies", {"initializers": ["he_normal"]})
    client.json("POST", "/api/runs/1/cancel")
    client.json("GET", "/api/studies/1")
    assert sent == [("POST", "application/json", b'{"initializers": ["he_normal"]}'),
                    ("POST", "application/json", None), ("GET", None, None)]
