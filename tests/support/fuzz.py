"""Schemathesis against a real uvicorn serving the app on one backend (tests/reliability/test_api_fuzz*.py).

One file per backend, so that a parallel test run (pytest -n) fuzzes both at once.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import subprocess
import sys
from pathlib import Path

from support import processes

RELIABILITY = Path(__file__).resolve().parents[1] / "reliability"
COUNTS = RELIABILITY.parent / "artifacts" / "schemathesis_counts.json"
SCHEMATHESIS = str(Path(sys.executable).with_name("schemathesis"))
TOKEN = "fuzz-token"
# The suite's depth; INITLAB_FUZZ_EXAMPLES=40 is the deeper run tests/reliability/README.md records.
MAX_EXAMPLES = int(os.environ.get("INITLAB_FUZZ_EXAMPLES", "12"))
SEED = 20261201


@contextlib.contextmanager
def server(tmp_path: Path, postgres_url: str | None = None):
    """A migrated, empty database and an API with a token on it; yields its base URL."""
    env = {"INITLAB_STATE_DIR": str(tmp_path / "state"), "INITLAB_PORT": str(processes.free_port()),
           "INITLAB_API_TOKEN": TOKEN, "INITLAB_PROBE_WAIT_S": "0.2"}
    if postgres_url:
        from sqlalchemy import create_engine, text

        env["INITLAB_DATABASE_URL"] = postgres_url
        processes.run_cli(["migrate"], env)
        engine = create_engine(env["INITLAB_DATABASE_URL"])
        with engine.begin() as connection:  # the session's database: start from empty tables, ids from 1
            connection.execute(text("TRUNCATE studies, runs, epoch_metrics, layer_stats, signal_probes "
                                    "RESTART IDENTITY CASCADE"))
        engine.dispose()
    else:
        processes.run_cli(["migrate"], env)
    api = processes.start(["api", "--port", env["INITLAB_PORT"]], env, tmp_path / "api.log")
    base = f"http://127.0.0.1:{env['INITLAB_PORT']}"
    try:
        processes.wait_until_up(base)
        yield base
    finally:
        processes.stop(api)


def check_all_find_nothing(backend: str, base: str, folder: Path) -> None:
    report = folder / "schemathesis.json"
    command = [SCHEMATHESIS, "run", f"{base}/openapi.json", "--checks", "all",
               "--exclude-checks", "positive_data_acceptance",  # replaced by schemathesis_hooks.py's own
               "--header", f"Authorization: Bearer {TOKEN}", "--max-examples", str(MAX_EXAMPLES),
               "--seed", str(SEED), "--generation-database", "none", "--workers", "1",
               "--report", "json", "--report-json-path", str(report)]
    env = {**os.environ, "SCHEMATHESIS_HOOKS": "schemathesis_hooks", "NO_COLOR": "1",
           "PYTHONPATH": os.pathsep.join(filter(None, [str(RELIABILITY), os.environ.get("PYTHONPATH")]))}
    result = subprocess.run(command, cwd=folder, env=env, capture_output=True, text=True, timeout=1800)
    output = result.stdout[-12000:] + result.stderr[-3000:]
    summary = json.loads(report.read_text())
    assert summary["complete"] and summary["operations"]["tested"] == summary["operations"]["total"], output
    assert summary["failures"] == [] and summary["errors"] == [], output
    assert result.returncode == 0, output
    phases = {name: phase["status"] for name, phase in summary["phases"].items()}
    assert phases["coverage"] == phases["fuzzing"] == phases["stateful"] == "success", phases
    cases = summary["test_cases"]
    assert cases["generated"] >= 50 * MAX_EXAMPLES, cases

    COUNTS.parent.mkdir(parents=True, exist_ok=True)
    with open(COUNTS.with_suffix(".lock"), "w") as lock:  # both backends' files may finish at once
        fcntl.flock(lock, fcntl.LOCK_EX)
        counts = json.loads(COUNTS.read_text()) if COUNTS.is_file() else {}
        counts[backend] = {"operations": summary["operations"]["tested"], "generated": cases["generated"],
                           "failures": len(summary["failures"]), "errors": len(summary["errors"]),
                           "seed": SEED, "max_examples": MAX_EXAMPLES, "seconds": round(summary["running_time"]),
                           "schemathesis": summary["schemathesis_version"]}
        COUNTS.write_text(json.dumps(counts, indent=2) + "\n")
    print(f"schemathesis ({backend}): {cases['generated']} cases over {summary['operations']['tested']} operations, "
          f"0 failures, 0 errors")
