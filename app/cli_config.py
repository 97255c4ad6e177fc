"""Whether this environment can run an ``initlab`` command, each problem said in one line.

A bad ``INITLAB_*`` value, a database URL whose driver is not installed, a state directory that
cannot be used: a configuration fault, which the user fixes in the environment, not a crash. Each
ends the command with exit status 78 (sysexits' EX_CONFIG) and no traceback.
"""

from __future__ import annotations

import os
import re
import tempfile
from json import JSONDecodeError
from pathlib import Path

import typer
from pydantic import ValidationError
from pydantic_settings import SettingsError
from typer.core import TyperGroup

from app.settings import Settings, get_settings

EXIT_CONFIG = 78  # sysexits' EX_CONFIG: the environment, the state directory or the database cannot be used
ENV_PREFIX = Settings.model_config.get("env_prefix", "")


def variable(field: object) -> str:
    """The environment variable of a Settings field: port -> INITLAB_PORT."""
    return f"{ENV_PREFIX}{field}".upper()


def settings_problems(exc: ValidationError | SettingsError) -> list[str]:
    """One line per bad variable, naming it and pydantic's rule."""
    if isinstance(exc, SettingsError):  # a list or mapping value that is not JSON
        field = re.search(r'field "([^"]+)"', str(exc))
        cause = exc.__cause__
        why = (f"not valid JSON ({cause}); write a list as [\"a\", \"b\"]" if isinstance(cause, JSONDecodeError)
               else str(cause or exc))
        return [f"{variable(field.group(1)) if field else 'settings'}: {why}"]
    lines = []
    for error in exc.errors(include_url=False):
        field = error["loc"][0] if error["loc"] else None
        lines.append(f"{variable(field) if field is not None else 'settings'}: {error['msg']}")
    return list(dict.fromkeys(lines))  # a union type reports each of its branches; one line each


class CheckedCommands(TyperGroup):
    """Runs a command, ending it with one line per bad ``INITLAB_*`` variable where the settings
    cannot be read: wherever get_settings() is first called, one place guards every command.
    --help never reads the settings, so it works in a broken environment."""

    def invoke(self, ctx):
        try:
            return super().invoke(ctx)
        except (ValidationError, SettingsError) as exc:
            if isinstance(exc, ValidationError) and exc.title != Settings.__name__:
                raise
            for line in settings_problems(exc):
                typer.echo(f"initlab: {line}", err=True)
            raise typer.Exit(EXIT_CONFIG) from None


def redacted(url: str) -> str:
    """A URL without its password, for logs."""
    if "@" in url and "://" in url:
        scheme, rest = url.split("://", 1)
        credentials, host = rest.rsplit("@", 1)
        return f"{scheme}://{credentials.split(':', 1)[0]}:***@{host}" if ":" in credentials else url
    return url


def database_problem(url: str) -> str | None:
    """Why SQLAlchemy cannot use the database URL (no such URL, dialect or installed driver), in one
    line; None when it can. Checked before anything opens it: the engine's own error is a traceback."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError, NoSuchModuleError

    name = f"{variable('database_url')} {redacted(url)}"
    try:
        parsed = make_url(url)
    except ArgumentError:
        return f"{name} is not a database URL (e.g. postgresql+psycopg://user@host/initlab)"
    try:
        parsed.get_dialect().import_dbapi()
    except NoSuchModuleError:
        return f"{name}: no such database kind {parsed.drivername!r} (initlab runs on sqlite or postgresql)"
    except ImportError as exc:
        return (f"{name}: its driver is not installed ({exc}); initlab installs drivers for sqlite and "
                "postgresql+psycopg")
    return None


def state_dir_problem(create: bool) -> str | None:
    """Why the state directory cannot be used, in one line naming the path; None when it can.

    Only where it is used: the embedded SQLite file or the filesystem broker live there.
    ``create`` (migrate, up) makes the directory itself, but never a missing parent: a
    parent that is not there is a typo or an unmounted volume, and creating it would hide
    that. The API and the workers need it to exist, migrated, and writable.
    """
    from app.storage.db import sqlite_path

    settings = get_settings()
    database = sqlite_path(settings.database_url)
    folders = {database.parent} if database is not None else set()
    if settings.uses_filesystem_broker:
        folders.add(Path(os.path.abspath(settings.state_dir)))
    for folder in sorted(folders):
        if not folder.exists():
            if not create:
                return f"state directory {folder} does not exist (INITLAB_STATE_DIR); run `initlab migrate` first"
            if not folder.parent.is_dir():
                return (f"state directory {folder} cannot be created: its parent {folder.parent} does not exist "
                        "(create it, or set INITLAB_STATE_DIR)")
            try:
                folder.mkdir()
            except OSError as exc:
                return f"state directory {folder} cannot be created: {exc.strerror}"
        if not folder.is_dir():
            return f"state directory {folder} is not a directory"
        try:  # a real write: os.access says yes to root on a read-only mount's directory modes
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            return f"state directory {folder} is not writable ({exc.strerror})"
    if database is not None:
        if database.exists() and not os.access(database, os.R_OK | os.W_OK):
            return f"database file {database} is not writable (INITLAB_STATE_DIR)"
        if not create and not database.exists():
            return f"no database at {database} (INITLAB_STATE_DIR); run `initlab migrate` first"
    return None


def storage_problem(create: bool) -> str | None:
    """Why the server commands (migrate, api, worker, up) cannot store anything; None when they can."""
    return database_problem(get_settings().database_url) or state_dir_problem(create)
