"""A SQLite file removed or replaced under a running process is noticed (issue 11, §7).

Open connections would go on using the deleted file, so every session and ping compares the
file at the path with the one this process first opened (device, inode).
"""

from __future__ import annotations

import shutil

import pytest

from app.storage import db, runs
from app.storage.db import DatabaseFileGone, StorageUnavailable, session_scope, sqlite_path

SPEC = {"name": "identity", "initializers": ["he_normal"], "seeds": [0], "training": {"epochs": 1}}


@pytest.fixture
def stored(migrated):
    from app.domain.spec import StudySpec
    from app.storage import studies

    migrated()
    study = studies.create_study(StudySpec.model_validate(SPEC))[0]
    assert db.ping() == "ok" and runs.get_run(study.runs[0].id).status == "queued"  # the file is known now
    return study


def test_sqlite_path_is_the_file_of_an_embedded_database(tmp_path):
    assert sqlite_path(f"sqlite:///{tmp_path}/x.sqlite") == tmp_path / "x.sqlite"
    assert sqlite_path("sqlite://") is None and sqlite_path("sqlite:///:memory:") is None
    assert sqlite_path("postgresql+psycopg://u@h/db") is None


def test_a_removed_database_file_is_refused_by_every_session_and_by_ping(stored, tmp_path):
    database = tmp_path / "state" / "initlab.sqlite"
    shutil.rmtree(tmp_path / "state")
    with pytest.raises(DatabaseFileGone) as caught:
        runs.get_run(stored.runs[0].id)  # it used to read (and write) the deleted file
    assert str(database) in str(caught.value) and "removed" in str(caught.value)
    assert isinstance(caught.value, StorageUnavailable)  # the API's 503
    assert db.ping().startswith("gone: the database file " + str(database))


def test_a_replaced_database_file_is_refused(stored, tmp_path):
    database = tmp_path / "state" / "initlab.sqlite"
    shutil.copy(database, tmp_path / "copy.sqlite")
    (tmp_path / "copy.sqlite").replace(database)  # same path, another file
    with pytest.raises(DatabaseFileGone, match="replaced"), session_scope():
        pass
    assert "replaced" in db.ping()


def test_the_api_answers_503_to_a_new_study_once_the_file_is_gone(sqlite_app, tmp_path):
    assert sqlite_app.post("/api/studies", json=SPEC).status_code == 201
    assert sqlite_app.get("/readyz").status_code == 200
    shutil.rmtree(tmp_path / "state")
    response = sqlite_app.post("/api/studies", json=SPEC)
    assert response.status_code == 503 and "removed" in response.json()["detail"]
    ready = sqlite_app.get("/readyz")
    assert ready.status_code == 503 and "removed" in ready.json()["database"]

