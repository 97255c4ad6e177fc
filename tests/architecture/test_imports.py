"""The house keeps its shape: data flows API → database + queue → worker, never back.

Read from the source with ``ast`` (every import, also those inside functions), so the rules
hold for code paths no other test happens to run:
- nothing under app/ imports worker/ (the worker imports the app's domain and storage);
- the domain (app/domain/) does no I/O and loads no backend: no storage, API, queue,
  settings, FastAPI, SQLAlchemy, Celery, Keras or TensorFlow;
- no import cycle between modules;
- no underscore-private name is imported from another module;
- ``import app.main`` loads neither TensorFlow nor Keras.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("app", "worker")
DOMAIN_FORBIDDEN = ("app.storage", "app.api", "app.queue", "app.settings", "app.cli", "app.main", "fastapi",
                    "sqlalchemy", "celery", "kombu", "keras", "tensorflow", "jax", "worker")


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules() -> dict[str, Path]:
    found = {module_name(path): path for package in PACKAGES for path in (ROOT / package).rglob("*.py")}
    assert len(found) > 40, "the source tree was not found"
    return found


def imports_of(name: str, path: Path) -> list[tuple[str, str | None, int]]:
    """(imported module, imported name or None, line) for every import in the file."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            out += [(alias.name, None, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                parent = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join(parent + ([base] if base else []))
            out += [(base, alias.name, node.lineno) for alias in node.names]
    return out


def resolved(target: str, name: str | None, known: dict[str, Path]) -> str | None:
    """The project module an import refers to (``from a import b`` may name module a.b)."""
    if name and f"{target}.{name}" in known:
        return f"{target}.{name}"
    while target and target not in known:
        target = target.rpartition(".")[0]
    return target or None


def graph() -> dict[str, set[str]]:
    known = modules()
    edges: dict[str, set[str]] = defaultdict(set)
    for name, path in known.items():
        for target, imported, _line in imports_of(name, path):
            found = resolved(target, imported, known)
            if found and found != name and not name.startswith(found + "."):
                edges[name].add(found)
    return edges


def test_app_never_imports_worker():
    offenders = [f"{name}:{line} imports {target}" for name, path in modules().items() if name.startswith("app")
                 for target, _imported, line in imports_of(name, path) if target.split(".")[0] == "worker"]
    assert offenders == []


def test_the_domain_does_no_io_and_loads_no_backend():
    offenders = [f"{name}:{line} imports {target}" for name, path in modules().items() if name.startswith("app.domain")
                 for target, _imported, line in imports_of(name, path)
                 if any(target == bad or target.startswith(bad + ".") for bad in DOMAIN_FORBIDDEN)]
    assert offenders == []


def test_no_import_cycles():
    edges = graph()
    assert edges, "no imports were found"
    cycles, state = [], {}

    def visit(node: str, path: list[str]) -> None:
        state[node] = "open"
        for nxt in sorted(edges.get(node, ())):
            if state.get(nxt) == "open":
                cycles.append(" -> ".join(path[path.index(nxt):] + [nxt]))
            elif nxt not in state:
                visit(nxt, path + [nxt])
        state[node] = "done"

    for node in sorted(edges):
        if node not in state:
            visit(node, [node])
    assert cycles == []


def test_no_private_name_is_imported_across_modules():
    known = modules()
    offenders = [f"{name}:{line} imports {imported} from {target}" for name, path in known.items()
                 for target, imported, line in imports_of(name, path)
                 if imported and imported.startswith("_") and not imported.startswith("__")
                 and resolved(target, None, known) is not None]
    assert offenders == []


def test_the_walker_sees_function_level_and_relative_imports(tmp_path):
    """So the rules above can fail: an import hidden in a function, and a relative private one."""
    probe = tmp_path / "probe.py"
    probe.write_text("def f():\n    from worker.training import trainer\n    from ._hidden import _name\n")
    found = imports_of("app.api.probe", probe)
    assert ("worker.training", "trainer", 2) in found and ("app.api._hidden", "_name", 3) in found


@pytest.mark.parametrize("module", ["app.main", "app.cli", "app.queue", "worker.celery_app"])
def test_importing_the_api_side_loads_no_tensorflow_or_keras(module):
    code = (f"import {module}, sys; loaded = sorted({{m.split('.')[0] for m in sys.modules}} & {{'tensorflow', 'keras'}});"
            "print(loaded); sys.exit(1 if loaded else 0)")
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
