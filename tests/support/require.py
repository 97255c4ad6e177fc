"""Skip for want of a dependency on a developer's machine; fail for it under CI.

CI (`.ci/run`) sets INITLAB_REQUIRE_SERVICES=1 (and INITLAB_REQUIRE_BROWSER=1): there a
missing data set, service, program or package must turn the run red, never quietly skip
the tests that need it. Every such skip in the suite goes through `require` or `missing`.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
from typing import NoReturn

import pytest

REQUIRE_SERVICES = "INITLAB_REQUIRE_SERVICES"
REQUIRE_BROWSER = "INITLAB_REQUIRE_BROWSER"


def strict(also: tuple[str, ...] = ()) -> bool:
    """True where a missing dependency is a failure: INITLAB_REQUIRE_SERVICES=1 or any of `also` set to 1."""
    return any(os.environ.get(name) == "1" for name in (REQUIRE_SERVICES, *also))


def missing(message: str, also: tuple[str, ...] = ()) -> NoReturn:
    """Fail (under CI) or skip (elsewhere) the current test, saying what is missing."""
    if strict(also):
        flags = " or ".join(f"{name}=1" for name in (REQUIRE_SERVICES, *also))
        pytest.fail(f"{message} (a failure, not a skip, under {flags})", pytrace=False)
    pytest.skip(message)


def require(condition: object, message: str, also: tuple[str, ...] = ()) -> None:
    """`missing(message)` unless `condition` holds."""
    if not condition:
        missing(message, also)


def require_module(name: str) -> None:
    require(importlib.util.find_spec(name) is not None, f"the Python package {name!r} is not installed")


def require_program(name: str, hint: str = "make system-deps installs it") -> str:
    path = shutil.which(name)
    require(path is not None, f"{name} is not on PATH ({hint})")
    return path
