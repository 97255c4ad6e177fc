"""``initlab submit``, ``export`` and ``delete``: a running server's API from a terminal.

Registered onto app.cli's Typer app by ``register``; the HTTP is in app/cli_http.py. Exit
codes: 0 done; 1 a run failed or was cancelled, the server answered an error, or could not be
reached; 2 bad input, found before anything is sent where it can be (a --url that is no http(s)
URL, an --output folder that is not there, a study file that does not parse) or refused by the
server (422) -- the code Typer gives any other bad input.
"""

from __future__ import annotations

import enum
import json
import os
import re
import sys
import time
import uuid
from pathlib import Path
from typing import Any

import typer
from rich.console import Console
from rich.markup import escape

from app.cli_http import ApiError, BadUrl, Client, Unreachable
from app.cli_progress import BAR_PER_RUN_UP_TO, FINISHED_OK, TERMINAL, StudyDisplay
from app.cli_summary import plural, summary_table

out = Console()
err = Console(stderr=True)

UrlOption = typer.Option(None, "--url", help="the server (default: http://127.0.0.1:$INITLAB_PORT)")
TokenOption = typer.Option(None, "--token", help="API token (default: $INITLAB_API_TOKEN)", show_default=False)
# The "format" of `initlab export --format json` (app/analysis/export.py json_chunks), spelled out here:
# importing that module would load TensorBoard's protos into every CLI command.
EXPORT_FORMAT = "initlab-study-export"


class Format(str, enum.Enum):
    csv = "csv"
    json = "json"
    tensorboard = "tensorboard"


def _fail(message: str, code: int = 1) -> typer.Exit:
    # soft_wrap: a long line (a path, a URL) stays one line, not folded at 80 columns mid-word.
    err.print(f"[red]{escape(message)}[/red]", highlight=False, soft_wrap=True)
    return typer.Exit(code)


def connect(url: str | None, token: str | None) -> Client:
    """The server's Client; a --url that is no http(s) URL is a usage error (exit 2), not the server's fault."""
    try:
        return Client(url, token)
    except BadUrl as exc:
        raise _fail(str(exc), 2) from None


def load_study(path: Path) -> dict[str, Any]:
    """The POST /api/studies body from a YAML or JSON file (YAML is read unless it ends in .json)."""
    import yaml

    text = path.read_text(encoding="utf-8")
    try:
        body = json.loads(text) if path.suffix.lower() == ".json" else yaml.safe_load(text)
    except (ValueError, yaml.YAMLError) as exc:
        raise _fail(f"{path}: not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}", 2) from None
    if not isinstance(body, dict):
        raise _fail(f"{path}: a study is a mapping (name, dataset, model, training, initializers, seeds)", 2)
    return body


def exported_spec(body: dict[str, Any]) -> dict[str, Any] | None:
    """The study spec inside a JSON export, None for any other document. A researcher reproducing a
    study hands its export back; its format, version and runs are no study fields and would be refused."""
    study = body.get("study")
    if body.get("format") == EXPORT_FORMAT and isinstance(study, dict) and isinstance(study.get("spec"), dict):
        return study["spec"]
    return None


def _create(client: Client, body: dict[str, Any]) -> dict[str, Any]:
    # One key for every attempt: a POST repeated after a lost answer returns the first study.
    key = {"Idempotency-Key": f"cli-{uuid.uuid4()}"}
    for attempt in range(3):
        try:
            return client.json("POST", "/api/studies", body, key)
        except ApiError as exc:
            if exc.status != 503 or attempt == 2:
                raise
        except Unreachable:
            if attempt == 2:
                raise
        time.sleep(2.0)
    raise AssertionError("unreachable")


def wait_for(client: Client, study: dict[str, Any], interval: float, timeout: float) -> dict[str, Any]:
    """Poll the study once per interval until every run is finished; returns the last study.
    Shown meanwhile by app/cli_progress.py: a bar per run in a small study, one bar and a tally in a large one."""
    deadline = time.monotonic() + timeout if timeout else None
    with StudyDisplay(err, study) as display:
        while True:
            try:
                study = client.json("GET", f"/api/studies/{study['id']}")
            except (Unreachable, ApiError) as exc:  # a restart or a database blip: keep waiting
                if isinstance(exc, ApiError) and exc.status not in (502, 503, 504):
                    raise
            display.update(study["runs"])
            if all(run["status"] in TERMINAL for run in study["runs"]):
                return study
            if deadline and time.monotonic() > deadline:
                raise _fail(f"still running after {timeout:g} s; the study goes on at {client.url}/studies/{study['id']}")
            time.sleep(interval)


def submit(
    study_file: Path = typer.Argument(..., exists=True, dir_okay=False, readable=True,
                                      help="the study, YAML or JSON: the body of POST /api/studies"),
    wait: bool = typer.Option(False, "--wait", help=f"follow the study until all runs finish, then print the summary: "
                              f"a bar per run up to {BAR_PER_RUN_UP_TO} runs; above that one bar, a tally by status "
                              "and a line for each run that fails, diverges or is cancelled"),
    url: str | None = UrlOption,
    token: str | None = TokenOption,
    interval: float = typer.Option(1.0, min=0.1, help="seconds between polls with --wait"),
    timeout: float = typer.Option(0.0, min=0.0, help="with --wait: give up after this many seconds (0: never)"),
) -> None:
    """Create a study on a running server; with --wait, follow it and print the summary table."""
    client = connect(url, token)
    body = load_study(study_file)
    spec = exported_spec(body)
    if spec is not None:
        err.print(f"{escape(str(study_file))}: an initlab export; re-submitting the spec of exported study "
                  f"{body['study'].get('id')} ({escape(json.dumps(body['study'].get('name'), ensure_ascii=False))})",
                  highlight=False, soft_wrap=True)
        body = spec
    try:
        study = _create(client, body)
        out.print(f"study {study['id']} created: {plural(len(study['runs']), 'run')} queued", highlight=False)
        out.print(f"{client.url}/studies/{study['id']}", highlight=False, soft_wrap=True)
        if not wait:
            return
        study = wait_for(client, study, interval, timeout)
        summary = client.json("GET", f"/api/studies/{study['id']}/summary?runs=false")
    except ApiError as exc:
        raise _fail(f"the server refused the study:\n{exc.message()}" if exc.status == 422 else exc.message(),
                    2 if exc.status == 422 else 1) from None
    except Unreachable as exc:
        raise _fail(str(exc)) from None
    except KeyboardInterrupt:
        raise _fail(f"stopped waiting; the study goes on at {client.url}/studies/{study['id']}", 130) from None
    out.print(summary_table(summary))
    counts: dict[str, int] = {}
    for run in study["runs"]:
        counts[run["status"]] = counts.get(run["status"], 0) + 1
    out.print(", ".join(f"{count} {status}" for status, count in sorted(counts.items())), highlight=False)
    if set(counts) - FINISHED_OK:
        raise _fail("some runs did not finish: " + "; ".join(
            f"run {run['id']} {run['status']}" + (f" ({run['error']})" if run.get("error") else "")
            for run in study["runs"] if run["status"] not in FINISHED_OK))


def _filename(disposition: str | None, fallback: str) -> str:
    match = re.search(r'filename="?([^";]+)"?', disposition or "")
    name = Path(match.group(1)).name if match else ""
    return name or fallback


def output_problem(output: Path | None) -> str | None:
    """Why the export cannot be written at ``output``, in one line; None when it can. Asked before the
    server builds the export: a typo in the folder would otherwise cost the whole export."""
    if output is None or str(output) == "-" or output.is_dir():
        return None
    folder = output.parent
    if not folder.exists():
        return f"--output {output}: the folder {folder} does not exist"
    if not folder.is_dir():
        return f"--output {output}: {folder} is not a folder"
    return None


def export(
    study: int = typer.Argument(..., min=1, help="study id"),
    format: Format = typer.Option(Format.csv, "--format", "-f", help="csv (long form), json or tensorboard (a zip)"),
    output: Path | None = typer.Option(None, "--output", "-o",
                                       help="file to write, '-' for stdout (default: the server's file name, here)"),
    histograms: bool = typer.Option(True, "--histograms/--no-histograms", help="include histograms (large)"),
    url: str | None = UrlOption,
    token: str | None = TokenOption,
) -> None:
    """Download a study's export (GET /api/studies/{id}/export)."""
    client = connect(url, token)
    problem = output_problem(output)
    if problem:
        raise _fail(problem, 2)
    query = f"?format={format.value}&histograms={'true' if histograms else 'false'}"
    try:
        response = client.open("GET", f"/api/studies/{study}/export{query}", timeout=300)
    except ApiError as exc:
        raise _fail(exc.message()) from None
    except Unreachable as exc:
        raise _fail(str(exc)) from None
    with response:
        if output is not None and str(output) == "-":
            while chunk := response.read(1 << 20):
                sys.stdout.buffer.write(chunk)
            sys.stdout.buffer.flush()
            return
        target = output or Path(_filename(response.headers.get("Content-Disposition"), f"initlab-study-{study}"))
        if target.is_dir():
            target = target / _filename(response.headers.get("Content-Disposition"), f"initlab-study-{study}")
        partial = target.with_name(target.name + ".part")  # a broken download leaves no half file under the name
        size = 0
        try:
            with open(partial, "wb") as handle:
                while chunk := response.read(1 << 20):
                    handle.write(chunk)
                    size += len(chunk)
        except OSError as exc:  # includes http.client.IncompleteRead's parent errors
            partial.unlink(missing_ok=True)
            raise _fail(f"the download broke off after {plural(size, 'byte')}: {exc}") from None
        os.replace(partial, target)
    err.print(f"wrote {target} ({size / 1024:.1f} kB)", highlight=False)


def delete(
    study: int = typer.Argument(..., min=1, help="study id"),
    yes: bool = typer.Option(False, "--yes", "-y", help="do not ask first"),
    url: str | None = UrlOption,
    token: str | None = TokenOption,
) -> None:
    """Delete a study with its runs and everything recorded for them (DELETE /api/studies/{id});
    one still training must be cancelled first."""
    client = connect(url, token)  # a bad --url is said before the question, not after it
    if not yes and not typer.confirm(f"Delete study {study} and everything recorded for it?"):
        raise _fail("nothing deleted")
    try:
        client.open("DELETE", f"/api/studies/{study}").close()
    except ApiError as exc:
        raise _fail(exc.message()) from None
    except Unreachable as exc:
        raise _fail(str(exc)) from None
    err.print(f"deleted study {study}", highlight=False)


def register(app: typer.Typer) -> None:
    app.command()(submit)
    app.command()(export)
    app.command()(delete)
