"""Train a small real study on the embedded default and take the README's screenshots.

Starts ``initlab up`` on a fresh state dir, submits the analysis issue's acceptance study
(he_normal, uniform_fan_in, lsuv and a custom normal clipped at 2 sigma, plus zeros and
ones, 3 seeds each), waits for it, downloads the three exports and checks they open,
then photographs each view of the study page and the signal-propagation page in
Debian's Chromium. Prints what it checked; the PNGs go to docs/screenshots/.

    INITLAB_DATA_DIR=../shared/datasets .venv/bin/python docs/make_screenshots.py
"""

from __future__ import annotations

import csv
import io
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import zipfile
from contextlib import contextmanager
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "docs" / "screenshots"
sys.path.insert(0, str(ROOT / "tests"))

CLIPPED = {"id": "custom", "params": {"distribution": "truncated_normal", "mode": "fan_in", "scale": 1.0,
                                      "clip_sigma": 2.0}}
STUDY = {
    "name": "He vs ±1/√n vs LSUV vs clipped normal",
    "dataset": {"name": "mnist", "train_samples": 6000, "validation_samples": 2000},
    "model": {"hidden_units": [64, 64, 64], "activation": "relu"},
    "training": {"epochs": 4, "batch_size": 128},
    "initializers": ["he_normal", "uniform_fan_in", "lsuv", CLIPPED, "zeros", "ones"],
    "seeds": [0, 1, 2],
}
SECTIONS = {  # file name -> CSS selector on the study page
    "study_verdict": "section[aria-labelledby=verdict-heading]",
    "study_stats": "#stats-section",
    "study_curves": "section[aria-labelledby=curves-heading]",
    "study_gradients": "section[aria-labelledby=grad-heading]",
    "study_histograms": "section[aria-labelledby=hist-heading]",
    "study_failures": "#failures-section",
}


def http(method: str, url: str, body=None):
    request = urllib.request.Request(url, method=method, data=None if body is None else json.dumps(body).encode(),
                                     headers={"content-type": "application/json"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return response.read(), response.headers


@contextmanager
def running_app():
    """``initlab up`` on a fresh state dir and a free port, stopped on exit; yields its base URL."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    state = Path(tempfile.mkdtemp(prefix="initlab-shots-"))
    env = {**os.environ, "INITLAB_STATE_DIR": str(state), "INITLAB_PORT": str(port)}
    log = open(state / "up.log", "w")
    up = subprocess.Popen([str(ROOT / ".venv" / "bin" / "initlab"), "up"], cwd=ROOT, env=env, stdout=log,
                          stderr=subprocess.STDOUT, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(120):
            try:
                http("GET", f"{base}/healthz")
                break
            except OSError:
                time.sleep(1)
        yield base
    finally:
        os.killpg(up.pid, signal.SIGTERM)
        up.wait(timeout=30)


def train(base: str, body: dict) -> dict:
    """POST a study, wait until no run is queued or running, and say how long that took."""
    started = time.monotonic()
    study = json.loads(http("POST", f"{base}/api/studies", body)[0])
    while True:
        now = json.loads(http("GET", f"{base}/api/studies/{study['id']}")[0])
        if all(run["status"] not in ("queued", "running") for run in now["runs"]):
            print(f"study {now['id']}: {len(now['runs'])} runs in {time.monotonic() - started:.0f} s:",
                  json.dumps(now["run_counts"]))
            return now
        time.sleep(2)


@contextmanager
def chromium():
    """Debian's Chromium through Playwright (tests/support/browser.py), closed on exit."""
    from playwright.sync_api import sync_playwright

    from support.browser import launch

    with sync_playwright() as playwright:
        browser = launch(playwright)
        try:
            yield browser
        finally:
            browser.close()


def main() -> None:
    OUT.mkdir(parents=True, exist_ok=True)
    with running_app() as base:
        study = train(base, STUDY)
        check_results(base, study["id"])
        shoot(base, study["id"])


def check_results(base: str, study_id: int) -> None:
    summary = json.loads(http("GET", f"{base}/api/studies/{study_id}/summary?runs=false")[0])
    print("baseline:", summary["statistics"]["baseline"])
    for group in summary["groups"]:
        stats = group["stats"]
        final = stats["final_val_accuracy"]
        diff = stats["difference"]["final_val_accuracy"]
        print(f"  {group['label']:<48} final val acc {final['mean']} [{final['ci_low']}, {final['ci_high']}]"
              f"  vs baseline: {diff['verdict']} {diff['mean']} [{diff['ci_low']}, {diff['ci_high']}]")
    failures = json.loads(http("GET", f"{base}/api/studies/{study_id}/failures")[0])
    for run in failures["runs"]:
        if run["seed"] == 0:
            print(f"  tags {run['label']}: {[tag['tag'] for tag in run['tags']]}")
    raw, _ = http("GET", f"{base}/api/studies/{study_id}/export?format=csv")
    rows = list(csv.DictReader(io.StringIO(raw.decode())))
    raw_json, _ = http("GET", f"{base}/api/studies/{study_id}/export?format=json")
    exported = json.loads(raw_json)
    raw_zip, _ = http("GET", f"{base}/api/studies/{study_id}/export?format=tensorboard")
    folder = Path(tempfile.mkdtemp(prefix="initlab-tb-"))
    zipfile.ZipFile(io.BytesIO(raw_zip)).extractall(folder)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    runs = sorted(path for path in folder.rglob("*") if path.is_dir() and any(path.glob("events.out.tfevents.*")))
    accumulator = EventAccumulator(str(runs[0]), size_guidance={"histograms": 0, "scalars": 0}).Reload()
    print(f"exports: csv {len(rows)} rows, json {len(exported.get('runs', []))} runs, "
          f"tensorboard {len(runs)} run folders ({len(accumulator.Tags()['scalars'])} scalar tags, "
          f"{len(accumulator.Tags()['histograms'])} histogram tags in {runs[0].name})")


def shoot(base: str, study_id: int) -> None:
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/studies/{study_id}")
        page.wait_for_function("() => document.getElementById('study').dataset.ready === 'true'", timeout=60000)
        page.wait_for_function("() => !document.getElementById('stats-section').hidden"
                               " && !document.getElementById('failures-section').hidden", timeout=60000)
        page.wait_for_timeout(1500)
        for name, selector in SECTIONS.items():
            page.locator(selector).screenshot(path=str(OUT / f"{name}.png"))
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(f"{base}/diagnostics/signal-propagation")
        page.locator("#preset-seed-002").click()
        page.wait_for_function("() => !document.getElementById('signal-results').hidden", timeout=120000)
        page.wait_for_timeout(1000)
        page.locator("#signal-results").screenshot(path=str(OUT / "signal_propagation.png"))
        print("signal propagation:", page.locator("#signal-summary").inner_text().replace("\n", " | "))
    print("screenshots:", ", ".join(sorted(path.name for path in OUT.glob("*.png"))))


if __name__ == "__main__":
    main()
