"""How fast the study page is on a big study: its data endpoints, and the first chart in Chromium.

Writes one study of 64 runs (8 initializers x 8 seeds) x 50 epochs x 4 Dense layers straight
through the storage layer, as the worker would (per epoch: metrics, and kernel, bias and
gradient summaries with 64-bin histograms and 129 quantiles each), then:

1. times every read endpoint the page uses, in-process (the handler and its JSON
   serialization: the server's own work) and over HTTP to a real uvicorn on localhost,
   and reports p50 / p95 and the size of each answer;
2. opens the study page in headless Chromium (Debian's, through Playwright) in fresh
   browser contexts and reads when the first chart was drawn (the page records
   performance.now(), i.e. the time since navigation start, after Plotly has drawn the
   validation-accuracy chart): "cold" is a context's first visit (empty cache), "warm" the
   same context's second visit (the hashed, immutable static files come from its cache).
   It also sums the bytes each visit moved (Resource Timing transferSize).

The tensors behind the summaries are 4096 values each: a summary has the same size
whatever the tensor, so the dashboard's work does not depend on it, and writing the
study takes seconds instead of minutes. Prints the figures; the last line is the key one.

    python bench/dashboard_speed.py                    # SQLite in a temporary folder
    python bench/dashboard_speed.py --database-url postgresql+psycopg://postgres@127.0.0.1:5432/bench
    python bench/dashboard_speed.py --pages-only        # only the page loads (issue 14 goal 3)
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
INITIALIZERS = ["zeros", "ones", "uniform_0_1", "random_normal", "glorot_uniform", "glorot_normal", "he_uniform", "he_normal"]
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--database-url", default="", help="default: SQLite in a temporary folder")
    parser.add_argument("--seeds", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=50)
    parser.add_argument("--repeats", type=int, default=40, help="timed requests per endpoint")
    parser.add_argument("--page-loads", type=int, default=5, help="fresh browser contexts opening the page")
    parser.add_argument("--pages-only", action="store_true", help="skip the endpoint timings")
    parser.add_argument("--chromium", default=os.environ.get("INITLAB_CHROMIUM", "/usr/bin/chromium"))
    return parser.parse_args()


def write_study(epochs: int, seeds: int) -> tuple[int, int]:
    """The big study, written through app.storage; returns (study id, a run id)."""
    import numpy as np

    from app.schemas.studies import StudyCreate
    from app.storage import records, runs, studies
    from worker.training.stats import gradient_summary, tensor_summary

    study, _ = studies.create_study(StudyCreate(
        name="bench: 64 runs x 50 epochs", dataset={"name": "mnist"}, model={"hidden_units": [256, 128, 64]},
        training={"epochs": epochs}, initializers=INITIALIZERS, seeds=list(range(seeds))))
    layers = ["dense_0", "dense_1", "dense_2", "output"]
    for number, run in enumerate(study.runs):
        rng = np.random.default_rng(number)
        runs.claim_run(run.id, worker_host="bench")
        scale = 0.01 + 0.01 * (number // seeds)
        for epoch in range(epochs + 1):
            rows = []
            for index, layer in enumerate(layers):
                kernel = rng.normal(0.001 * epoch, scale * (1 + 0.02 * epoch), size=4096)
                for kind, summary in (("kernel", tensor_summary(kernel)), ("bias", tensor_summary(kernel[:64] * 0.1)),
                                      ("gradient", gradient_summary(kernel * 1e-3 / (1 + epoch)))):
                    rows.append({"layer": layer, "index": index, "kind": kind, **summary})
            records.record_layers(run.id, epoch, rows)
            if epoch:
                accuracy = 0.5 + 0.4 * (1 - 0.9 ** epoch) + 0.01 * (number // seeds)
                records.record_epoch(run.id, epoch, {"loss": 1.5 * 0.95 ** epoch, "accuracy": accuracy,
                                                     "val_loss": 1.6 * 0.95 ** epoch, "val_accuracy": accuracy - 0.02,
                                                     "seconds": 1.0 + 0.01 * number})
        runs.finish_run(run.id, "succeeded")
    return study.id, study.runs[0].id


def endpoints(study_id: int, run_id: int, epochs: int) -> dict[str, str]:
    return {
        "summary (charts)": f"/api/studies/{study_id}/summary?stats=false",
        # What the stats section asks for: the bootstrap statistics without the per-run series.
        "summary + statistics": f"/api/studies/{study_id}/summary?runs=false&max_points=2&threshold=90",
        "gradients": f"/api/studies/{study_id}/gradients",
        "histograms epoch 0": f"/api/studies/{study_id}/histograms?epoch=0",
        f"histograms epoch {epochs}": f"/api/studies/{study_id}/histograms?epoch={epochs}",
        "histograms robust": f"/api/studies/{study_id}/histograms?epoch={epochs}&range=robust",
        "run heatmap": f"/api/runs/{run_id}/histograms?layer=dense_0",
        "run percentiles": f"/api/runs/{run_id}/percentiles?layer=dense_0",
        "study (runs)": f"/api/studies/{study_id}",
        "events (finished)": f"/api/studies/{study_id}/events",
    }


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def time_in_process(paths: dict[str, str], repeats: int) -> tuple[dict[str, list[float]], dict[str, float]]:
    """The server's own work: the ASGI app called in-process (no sockets), answer read in full.

    The first request of each endpoint is reported apart ("cold"): it pays for SQLite's page
    cache and, for gradients and histograms, for reading every run's aggregates into the
    in-memory cache (app/dashboard/cache.py), once per server process and study.
    """
    from fastapi.testclient import TestClient

    from app.main import create_app

    timings: dict[str, list[float]] = {}
    cold: dict[str, float] = {}
    with TestClient(create_app(), base_url="http://localhost") as client:
        for name, path in paths.items():
            start = time.perf_counter()
            client.get(path)
            cold[name] = 1000 * (time.perf_counter() - start)
            timings[name] = []
            for _ in range(repeats):
                start = time.perf_counter()
                response = client.get(path)
                timings[name].append(1000 * (time.perf_counter() - start))
                assert response.status_code == 200, (path, response.status_code)
    return timings, cold


def time_over_http(base: str, paths: dict[str, str], repeats: int) -> dict[str, tuple[list[float], int]]:
    results = {}
    for name, path in paths.items():
        urllib.request.urlopen(base + path).read()
        times, size = [], 0
        for _ in range(repeats):
            start = time.perf_counter()
            with urllib.request.urlopen(base + path) as response:
                size = len(response.read())
            times.append(1000 * (time.perf_counter() - start))
        results[name] = (times, size)
    return results


# Per visit: bytes moved (Resource Timing transferSize), when plotly.js had arrived and when the
# deferred scripts had run (DOMContentLoaded), both in ms since navigation start.
VISIT = """() => {
  const nav = performance.getEntriesByType('navigation')[0], resources = performance.getEntriesByType('resource');
  const plotly = resources.find(entry => entry.name.includes('plotly'));
  return {bytes: [nav, ...resources].reduce((sum, entry) => sum + (entry.transferSize || 0), 0),
          plotly: plotly ? plotly.responseEnd : 0, dcl: nav.domContentLoadedEventEnd};
}"""


def _visit(page, url: str) -> dict[str, float]:
    """One navigation: ms from navigation start to the first chart drawn, and VISIT's figures."""
    page.goto(url)
    page.wait_for_function("() => document.getElementById('study').dataset.ready === 'true'", timeout=60000)
    return {"chart": float(page.evaluate("document.getElementById('study').dataset.firstChart")), **page.evaluate(VISIT)}


def first_chart_times(base: str, study_id: int, loads: int, chromium: str) -> dict[str, list[dict[str, float]]]:
    """Per fresh context, a cold visit (nothing cached) and then a warm one (the same context again)."""
    from playwright.sync_api import sync_playwright

    found: dict[str, list[dict[str, float]]] = {"cold": [], "warm": []}
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=chromium, headless=True, args=CHROMIUM_ARGS)
        for _ in range(loads):
            context = browser.new_context(viewport={"width": 1400, "height": 1000})
            page = context.new_page()
            found["cold"].append(_visit(page, f"{base}/studies/{study_id}"))
            found["warm"].append(_visit(page, f"{base}/studies/{study_id}"))
            context.close()
        browser.close()
    return found


def machine() -> str:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "unknown CPU")
    return f"{model}, {os.cpu_count()} cores, load average {' '.join(f'{v:.2f}' for v in os.getloadavg())}"


def main() -> None:
    args = parse_args()
    state = tempfile.mkdtemp(prefix="initlab-bench-")
    os.environ.update({"INITLAB_STATE_DIR": state, "INITLAB_DATABASE_URL": args.database_url, "INITLAB_BROKER_URL": "",
                       "TF_CPP_MIN_LOG_LEVEL": "2"})
    env = {**os.environ}
    subprocess.run([sys.executable, "-m", "alembic", "upgrade", "head"], cwd=ROOT, env=env, check=True,
                   capture_output=True)
    started = time.perf_counter()
    study_id, run_id = write_study(args.epochs, args.seeds)
    print(f"wrote {len(INITIALIZERS) * args.seeds} runs x {args.epochs} epochs x 4 layers "
          f"in {time.perf_counter() - started:.0f} s ({args.database_url or 'SQLite'})")
    paths = endpoints(study_id, run_id, args.epochs)

    in_process, cold = ({}, {}) if args.pages_only else time_in_process(paths, args.repeats)
    port = 8799
    server = subprocess.Popen([sys.executable, "-m", "uvicorn", "app.main:app", "--port", str(port), "--log-level", "warning"],
                              cwd=ROOT, env=env)
    base = f"http://127.0.0.1:{port}"
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(f"{base}/healthz", timeout=1)
                break
            except OSError:
                time.sleep(0.2)
        over_http = {} if args.pages_only else time_over_http(base, paths, args.repeats)
        loads = first_chart_times(base, study_id, args.page_loads, args.chromium)
    finally:
        server.terminate()
        server.wait()
    worst_p95, worst_size = 0.0, 0
    if not args.pages_only:
        print(f"{'endpoint':<22} {'cold':>8} {'in-process p50':>15} {'p95':>8} {'HTTP p50':>10} {'p95':>8} {'bytes':>10}")
    for name in over_http:
        times, size = over_http[name]
        p95 = percentile(in_process[name], 0.95)
        if not name.startswith("events"):  # a stream, timed to its end; not one of the chart endpoints
            worst_p95, worst_size = max(worst_p95, p95), max(worst_size, size)
        print(f"{name:<22} {cold[name]:5.0f} ms {statistics.median(in_process[name]):12.1f} ms {p95:6.1f} ms "
              f"{statistics.median(times):7.1f} ms {percentile(times, 0.95):6.1f} ms {size:10,d}")
    for kind, visits in loads.items():
        median = {key: statistics.median(visit[key] for visit in visits) for key in ("plotly", "dcl", "bytes")}
        print(f"first chart after navigation, {kind}, {len(visits)} fresh contexts: "
              + ", ".join(f"{visit['chart']:.0f}" for visit in visits) + f" ms (medians: plotly.js in at "
              f"{median['plotly']:.0f} ms, scripts run by {median['dcl']:.0f} ms, {median['bytes'] / 1024:.0f} kB moved)")
    print(f"machine: {machine()}")
    cold_ms, warm_ms = ([visit["chart"] for visit in loads[kind]] for kind in ("cold", "warm"))
    endpoint_figures = "" if args.pages_only else f"dashboard_p95_ms={worst_p95:.1f} max_response_kb={worst_size / 1024:.0f} "
    print(f"{endpoint_figures}first_chart_cold_ms_median={statistics.median(cold_ms):.0f} "
          f"first_chart_cold_ms_max={max(cold_ms):.0f} first_chart_warm_ms_median={statistics.median(warm_ms):.0f} "
          f"first_chart_warm_ms_max={max(warm_ms):.0f}")

if __name__ == "__main__":
    main()
