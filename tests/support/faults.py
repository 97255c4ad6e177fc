"""Counting what a fault test saw.

Each fault test reports what it saw; the counts are printed at the end of the run
and kept in tests/artifacts/reliability_counts.json (README.md quotes them)."""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path

FILE = Path(__file__).resolve().parents[1] / "artifacts" / "reliability_counts.json"


def record_counts(fault: str, *, submitted: int, completed: int, duplicated: int, lost: int) -> None:
    """Add one fault's counts to the shared file; parallel test processes (pytest -n) take turns."""
    FILE.parent.mkdir(parents=True, exist_ok=True)
    with open(FILE.with_suffix(".lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        counts = json.loads(FILE.read_text()) if FILE.exists() else {}
        counts[fault] = {"runs submitted": submitted, "completed": completed, "duplicated": duplicated, "lost": lost}
        partial = FILE.with_suffix(".partial")
        partial.write_text(json.dumps(counts, indent=2))
        os.replace(partial, FILE)
    print(f"{fault}: {counts[fault]}")


def row_counts(postgres_url: str, run_id: int) -> tuple[int, int, int]:
    """(epoch rows, distinct epochs, layer-stat rows) of one run, straight from SQL."""
    from sqlalchemy import create_engine, text

    engine = create_engine(postgres_url)
    with engine.connect() as connection:
        epochs = connection.execute(text("SELECT count(*), count(DISTINCT epoch) FROM epoch_metrics WHERE run_id=:r"),
                                    {"r": run_id}).one()
        layers = connection.execute(text("SELECT count(*) FROM layer_stats WHERE run_id=:r"), {"r": run_id}).scalar()
    engine.dispose()
    return epochs[0], epochs[1], layers
