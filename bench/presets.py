"""A form preset of linked studies, end to end: what its studies found.

Starts `initlab up` (the embedded default) in a temporary state directory, POSTs one study per
variant of the preset exactly as the form does (the variant's model laid over the study's, its
label added to the name), waits for every run, and prints each study's final validation
accuracy per initializer and seed (bench/RESULTS.md, "Issue 12's linked presets").

    python bench/presets.py batchnorm-rescue
    python bench/presets.py deep-residual
"""

from __future__ import annotations

import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import typer

sys.path.insert(0, str(Path(__file__).resolve().parent))

from study_speed import INITLAB, ROOT, describe_machine, free_port, http, wait_for  # noqa: E402


def variant_bodies(preset: dict) -> list[dict]:
    study = preset["study"]
    return [{**study, "name": f"{study['name']} — {variant['label']}", "model": {**study["model"], **variant["model"]}}
            for variant in preset["variants"]] or [study]


def main(preset_id: str = typer.Argument(..., help="an id of GET /api/presets with variants"),
         data_dir: Path | None = typer.Option(None, help="INITLAB_DATA_DIR (default: the environment's)")) -> None:
    workdir = Path(tempfile.mkdtemp(prefix="initlab-presets-"))
    port = free_port()
    env = {**os.environ, "INITLAB_STATE_DIR": str(workdir / "state"), "INITLAB_PORT": str(port), "PYTHONUNBUFFERED": "1"}
    if data_dir:
        env["INITLAB_DATA_DIR"] = str(data_dir)
    base = f"http://127.0.0.1:{port}"
    log_path = workdir / "up.log"
    with open(log_path, "w") as log:
        process = subprocess.Popen([INITLAB, "up"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    try:
        wait_for(lambda: http("GET", f"{base}/healthz")[0] == 200, 120, "/healthz")
        wait_for(lambda: re.search(r"@\S+ ready\.", log_path.read_text()), 180, "a worker to be ready")
        _, presets = http("GET", f"{base}/api/presets")
        preset = next((p for p in presets if p["id"] == preset_id), None)
        if preset is None:
            raise typer.BadParameter(f"no preset {preset_id!r}; there are {[p['id'] for p in presets]}")
        started = time.time()
        posted = []
        for body in variant_bodies(preset):
            status, study = http("POST", f"{base}/api/studies", body)
            if status != 201:
                raise RuntimeError(f"POST /api/studies answered {status}: {study}")
            posted.append(study["id"])

        def finished():
            studies = [http("GET", f"{base}/api/studies/{study_id}")[1] for study_id in posted]
            return studies if all(s["status"] not in ("queued", "running") for s in studies) else None

        studies = wait_for(finished, 3600, "every run to finish", interval=2.0)
        print(f"preset={preset_id} studies={len(studies)} wall={time.time() - started:.0f}s machine={describe_machine()}")
        for study in studies:
            _, metrics = http("GET", f"{base}/api/studies/{study['id']}/metrics")
            print(f"{study['name']}: {study['status']}")
            finals: dict[str, list[tuple[int, float]]] = {}
            for run in metrics["runs"]:
                final = run["epochs"][-1]["val_accuracy"] if run["epochs"] else float("nan")
                finals.setdefault(run["initializer"], []).append((run["seed"], final))
            for initializer, rows in finals.items():
                values = [value for _, value in sorted(rows)]
                print(f"  {initializer:18s} seeds {[seed for seed, _ in sorted(rows)]}: "
                      f"{', '.join(f'{value:.4f}' for value in values)}  mean {statistics.mean(values):.4f}")
    finally:
        os.killpg(process.pid, signal.SIGINT)
        process.wait(60)


if __name__ == "__main__":
    typer.run(main)
