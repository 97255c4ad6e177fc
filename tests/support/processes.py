"""Start and stop the real initlab processes the way users and compose start them."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# The console script users, make and docker-compose run.
INITLAB = [str(Path(sys.executable).with_name("initlab"))]


def child_env(env: dict[str, str]) -> dict[str, str]:
    return {"TF_ENABLE_ONEDNN_OPTS": "1", **os.environ, "TF_CPP_MIN_LOG_LEVEL": "2", "PYTHONUNBUFFERED": "1", **env}


def run_cli(args: list[str], env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    result = subprocess.run([*INITLAB, *args], cwd=ROOT, env=child_env(env), capture_output=True, text=True,
                            timeout=timeout)
    if result.returncode != 0:
        raise AssertionError(f"initlab {' '.join(args)} failed:\n{result.stdout}\n{result.stderr}")
    return result


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start(args: list[str], env: dict[str, str], log: Path) -> subprocess.Popen:
    """Start `initlab <args>` in its own process group, output to a log file."""
    handle = open(log, "w")
    return subprocess.Popen([*INITLAB, *args], cwd=ROOT, env=child_env(env), stdout=handle, stderr=subprocess.STDOUT,
                            start_new_session=True)


def stop(process: subprocess.Popen, sig: int = signal.SIGTERM, timeout: float = 20) -> float:
    """Signal the process group; returns seconds until it exited."""
    started = time.monotonic()
    if process.poll() is None:
        os.killpg(process.pid, sig)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
            raise
    return time.monotonic() - started


def http(method: str, url: str, body: dict | None = None, timeout: float = 10) -> tuple[int, object]:
    data = None if body is None else json.dumps(body).encode()
    request = urllib.request.Request(url, data=data, method=method, headers={"content-type": "application/json"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            raw = response.read()
            kind = response.headers.get("content-type", "")
            return response.status, json.loads(raw) if "json" in kind else raw.decode()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode()


def wait_for(predicate, timeout: float, interval: float = 0.5, what: str = "condition"):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            last = predicate()
        except (OSError, urllib.error.URLError):
            last = None
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}; last value: {last!r}")


def wait_until_up(base_url: str, timeout: float = 60) -> None:
    wait_for(lambda: http("GET", f"{base_url}/healthz")[0] == 200, timeout, what=f"{base_url}/healthz")


def wait_for_study(base_url: str, study_id: int, timeout: float) -> dict:
    """Poll the study until every run is terminal; returns the last study JSON."""

    def done():
        status, study = http("GET", f"{base_url}/api/studies/{study_id}")
        if status == 200 and all(run["status"] in ("succeeded", "diverged", "failed", "cancelled") for run in study["runs"]):
            return study
        return None

    return wait_for(done, timeout, interval=1.0, what=f"study {study_id} to finish")
