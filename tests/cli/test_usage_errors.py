"""A user's mistake is one line that names it, with the exit code of its kind, never a traceback.

A --url without http:// or an --output folder that is not there: 2 (a usage error), said before
anything is sent. A bad INITLAB_* value or a database URL initlab cannot open: 78 (EX_CONFIG),
one line per variable, for every command. No server is needed: requests are caught in process.
"""

from __future__ import annotations

import io
import json
import socket
import subprocess
import urllib.error
import urllib.request

import pytest
from typer.testing import CliRunner

from app.cli import cli
from app.settings import LOOPBACK_HOSTS, get_settings
from support import processes

EX_CONFIG = 78


@pytest.fixture
def sent(monkeypatch):
    """The requests the CLI sends; each is answered with a one-run study."""
    requests = []

    def urlopen(request, timeout):
        requests.append(request.full_url)
        return io.BytesIO(json.dumps({"id": 17, "runs": [{"id": 1}]}).encode())

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    return requests


@pytest.fixture
def environment(monkeypatch, tmp_path):
    """Set INITLAB_* variables for one test; the cached settings are read afresh before and after."""
    monkeypatch.setenv("INITLAB_STATE_DIR", str(tmp_path / "state"))
    get_settings.cache_clear()
    yield monkeypatch.setenv
    monkeypatch.undo()
    get_settings.cache_clear()


def invoke(args: list[str]):
    result = CliRunner().invoke(cli, args)
    return result, result.stderr.strip()


@pytest.fixture
def study_file(tmp_path):
    path = tmp_path / "t1.json"
    path.write_text(json.dumps({"initializers": ["he_normal"]}))
    return str(path)


@pytest.mark.parametrize("command", ["submit", "export", "delete"])
@pytest.mark.parametrize("url", ["localhost:8031", "notaurl"])
def test_a_url_without_http_is_a_usage_error_said_before_anything_is_sent(command, url, study_file, sent):
    args = {"submit": [study_file], "export": ["1"], "delete": ["1"]}[command]
    result, stderr = invoke([command, *args, "--url", url])
    assert result.exit_code == 2, (result.exception, stderr)
    assert stderr == f"--url {url}: not an http(s) URL; write http://{url}"
    assert sent == []


def test_a_url_with_a_bad_port_is_a_usage_error_too(sent):
    result, stderr = invoke(["export", "1", "--url", "http://localhost:80x"])
    assert result.exit_code == 2 and stderr.startswith("--url http://localhost:80x: not an http(s) URL") and sent == []


def test_export_checks_the_output_folder_before_the_server_builds_the_export(tmp_path, sent):
    target = tmp_path / "nodir" / "out.csv"
    result, stderr = invoke(["export", "9", "-o", str(target), "--url", "http://127.0.0.1:1"])
    assert result.exit_code == 2, (result.exception, stderr)
    assert stderr == f"--output {target}: the folder {target.parent} does not exist"
    assert sent == []


def test_export_to_an_existing_folder_still_asks_the_server(tmp_path, monkeypatch):
    def urlopen(request, timeout):
        raise urllib.error.URLError("connection refused")

    monkeypatch.setattr(urllib.request, "urlopen", urlopen)
    result, stderr = invoke(["export", "9", "-o", str(tmp_path / "out.csv"), "--url", "http://127.0.0.1:1"])
    assert result.exit_code == 1 and "cannot reach http://127.0.0.1:1" in stderr


@pytest.mark.parametrize("name, value, rule", [
    ("INITLAB_PORT", "abc", "Input should be a valid integer"),
    ("INITLAB_WORKER_GPUS", "abc", "not a GPU id: 'abc'"),
    ("INITLAB_WORKER_MEMORY", "lots", "not a memory size: 'lots'"),
    ("INITLAB_FUSE_MAX", "0", "fuse_max is a number of runs (at least 1) or auto"),
    ("INITLAB_CORS_ORIGINS", "abc", "not valid JSON"),
])
def test_a_bad_variable_is_one_line_naming_it(environment, name, value, rule):
    environment(name, value)
    result, stderr = invoke(["migrate"])
    assert result.exit_code == EX_CONFIG, (result.exception, stderr)
    assert len(result.stderr.strip().splitlines()) == 1 and stderr.startswith(f"initlab: {name}: ") and rule in stderr


@pytest.mark.parametrize("args", [["up"], ["api"], ["worker"], ["submit", "STUDY"], ["export", "1"], ["delete", "1", "-y"]])
def test_every_command_reports_the_settings_the_same_way(environment, args, study_file, sent):
    environment("INITLAB_PORT", "abc")
    environment("INITLAB_FUSE_MAX", "0")
    result, stderr = invoke([study_file if arg == "STUDY" else arg for arg in args])
    assert result.exit_code == EX_CONFIG, (result.exception, stderr)
    assert result.stderr.strip().splitlines() == [
        "initlab: INITLAB_PORT: Input should be a valid integer, unable to parse string as an integer",
        "initlab: INITLAB_FUSE_MAX: Value error, fuse_max is a number of runs (at least 1) or auto"]
    assert sent == []


def test_help_works_in_a_broken_environment(environment):
    environment("INITLAB_PORT", "abc")
    result, _ = invoke(["api", "--help"])
    assert result.exit_code == 0 and "--host" in result.stdout


@pytest.mark.parametrize("url, says", [
    ("mysql://user:secret@db.lan/initlab", "mysql://user:***@db.lan/initlab: its driver is not installed (No module named"),
    ("foo://db.lan/initlab", "no such database kind 'foo'"),
    ("nonsense", "nonsense is not a database URL"),
])
def test_a_database_url_initlab_cannot_open_is_one_line(environment, url, says):
    environment("INITLAB_DATABASE_URL", url)
    result, stderr = invoke(["migrate"])
    assert result.exit_code == EX_CONFIG, (result.exception, stderr)
    assert stderr.startswith("initlab: INITLAB_DATABASE_URL ") and says in stderr and "secret" not in stderr
    assert len(result.stderr.strip().splitlines()) == 1


def test_the_console_script_says_it_in_one_line(tmp_path):
    result = subprocess.run([*processes.INITLAB, "migrate"], cwd=tmp_path, capture_output=True, text=True, timeout=60,
                            env=processes.child_env({"INITLAB_PORT": "abc", "INITLAB_STATE_DIR": str(tmp_path / "s")}))
    assert result.returncode == EX_CONFIG
    assert result.stderr.strip() == "initlab: INITLAB_PORT: Input should be a valid integer, unable to parse string as an integer"


def test_counts_are_pluralized(study_file, sent):
    from app.cli_summary import plural

    assert [plural(count, "run") for count in (0, 1, 2)] == ["0 runs", "1 run", "2 runs"]
    result, _ = invoke(["submit", study_file, "--url", "http://127.0.0.1:1"])
    assert result.exit_code == 0 and "study 17 created: 1 run queued" in result.stdout


def test_api_options_are_the_variables(environment, monkeypatch):
    """--host is INITLAB_HOST for the app too: it answers to that name (app/security.py)."""
    import app.cli

    environment("INITLAB_ALLOWED_HOSTS", "")
    environment("INITLAB_HOST", "127.0.0.1")  # the command sets both: undone after the test
    environment("INITLAB_PORT", "8000")
    execs = []
    monkeypatch.setattr(app.cli, "_require_state_dir", lambda create: None)
    monkeypatch.setattr(app.cli.os, "execv", lambda path, args: execs.append((args, get_settings().trusted_hosts)))
    result, stderr = invoke(["api", "--host", "vm", "--port", "8034"])
    assert result.exit_code == 0, (result.exception, stderr)
    (args, trusted), = execs
    assert args[args.index("--host") + 1] == "vm" and args[args.index("--port") + 1] == "8034"
    assert "vm" in trusted


def _name_for_loopback() -> str:
    """A host name other than the loopback ones that resolves to 127.0.0.1 here (/etc/hosts)."""
    for name in (socket.gethostname(), "vm", "localhost.localdomain"):
        try:
            if name.lower() not in LOOPBACK_HOSTS and socket.gethostbyname(name) == "127.0.0.1":
                return name
        except OSError:
            continue
    pytest.skip("no host name other than localhost resolves to 127.0.0.1 here")


def _status(url: str, host: str) -> int:
    try:
        with urllib.request.urlopen(urllib.request.Request(url, headers={"Host": host}), timeout=5) as response:
            return response.status
    except urllib.error.HTTPError as exc:
        return exc.code


def test_a_server_started_with_host_answers_to_that_name(tmp_path):
    name, port = _name_for_loopback(), processes.free_port()
    env = {"INITLAB_STATE_DIR": str(tmp_path / "state"), "INITLAB_ALLOWED_HOSTS": "", "INITLAB_HOST": "127.0.0.1"}
    processes.run_cli(["migrate"], env)
    server = processes.start(["api", "--host", name, "--port", str(port)], env, tmp_path / "api.log")
    try:
        url = f"http://127.0.0.1:{port}/api/studies"
        processes.wait_for(lambda: _status(url, "127.0.0.1") == 200, 60, what="the API")
        assert _status(url, f"{name}:{port}") == 200, (tmp_path / "api.log").read_text()
        assert _status(url, f"evil.example:{port}") == 400  # the Host check is on
    finally:
        processes.stop(server)
