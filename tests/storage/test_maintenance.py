"""`initlab compact`: a deleted study's space goes back to the disk (SQLite) and what is kept stays."""

from __future__ import annotations

import subprocess

from sqlalchemy import func, select, text

from app.schemas.studies import StudyCreate
from app.settings import get_settings
from app.storage import records, runs, studies
from app.storage.db import get_engine, session_scope, sqlite_path
from app.storage.maintenance import compact
from app.storage.models import LayerStat
from support import processes

EDGES = [i / 64 for i in range(65)]


def _finished_study(name: str, epochs: int) -> list[int]:
    """A finished two-run study with `epochs` epochs of 8 histogram rows a run."""
    spec = StudyCreate(name=name, initializers=["he_normal", "zeros"], seeds=[0],
                       training={"epochs": epochs}, dataset={"name": "mnist", "train_samples": 100})
    run_ids = [run.id for run in studies.create_study(spec)[0].runs]
    for run_id in run_ids:
        runs.claim_run(run_id, "host:1")
        for epoch in range(1, epochs + 1):
            records.record_layers(run_id, epoch, [
                {"layer": f"dense_{i}", "index": i, "kind": "kernel", "mean": 0.0, "std": 0.1, "min": -1.0,
                 "max": 1.0, "l2": 2.0, "nonfinite": 0, "edges": EDGES, "counts": list(range(64))} for i in range(8)])
        runs.finish_run(run_id, "succeeded")
    return run_ids


def _layer_rows(run_ids: list[int]) -> int:
    with session_scope() as session:
        return session.scalar(select(func.count()).select_from(LayerStat).where(LayerStat.run_id.in_(run_ids)))


def test_compact_gives_a_deleted_studys_space_back_to_the_disk_on_sqlite(migrated):
    env = migrated()
    doomed = _finished_study("doomed", epochs=200)
    kept = _finished_study("kept", epochs=5)
    with session_scope() as session:
        doomed_study = session.execute(text("SELECT study_id FROM runs WHERE id = :id"), {"id": doomed[0]}).scalar()
    assert studies.delete_study(doomed_study) is True
    path = sqlite_path(get_settings().database_url)
    done = compact(get_settings().database_url)
    assert done.kind == "sqlite" and done.after < done.before / 4, done  # 3200 histogram rows gone from the file
    assert done.after == path.stat().st_size  # the write-ahead log was emptied into it
    assert _layer_rows(kept) == 2 * 5 * 8 and _layer_rows(doomed) == 0
    # The command says the same, in a line a person reads.
    result = processes.run_cli(["compact"], env)
    assert "MB →" in result.stderr + result.stdout


def test_compact_vacuums_postgresql_and_keeps_its_rows(migrated, postgres_url):
    migrated(INITLAB_DATABASE_URL=postgres_url)
    with get_engine().begin() as connection:  # the session database is shared by the PostgreSQL tests
        connection.execute(text("TRUNCATE studies, runs, epoch_metrics, layer_stats, layer_diagnostics "
                                "RESTART IDENTITY CASCADE"))
    kept = _finished_study("kept", epochs=5)
    done = compact(postgres_url)
    assert done.kind == "postgresql" and done.before > 0 and done.after > 0
    assert _layer_rows(kept) == 2 * 5 * 8
    with get_engine().connect() as connection:  # VACUUM ANALYZE ran: the table has been analyzed since
        analyzed = connection.execute(text("SELECT last_analyze FROM pg_stat_user_tables "
                                           "WHERE relname = 'layer_stats'")).scalar()
    assert analyzed is not None


def test_compact_while_the_database_is_locked_says_so_in_one_line(migrated):
    # A writer holds SQLite's lock (a worker mid-write): VACUUM waits the busy timeout, then the
    # command ends with one line naming the database, not a traceback.
    env = migrated(INITLAB_LOCK_TIMEOUT_S="0.5")
    with get_engine().connect() as connection:
        connection.exec_driver_sql("BEGIN IMMEDIATE")
        result = subprocess.run([*processes.INITLAB, "compact"], cwd=processes.ROOT, env=processes.child_env(env),
                                capture_output=True, text=True, timeout=120)
        connection.exec_driver_sql("ROLLBACK")
    assert result.returncode != 0, result.stdout
    assert result.stderr.startswith("initlab: cannot compact") and "locked" in result.stderr
    assert "Traceback" not in result.stderr
