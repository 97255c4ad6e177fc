"""Shared fixtures of the worker's tests: a migrated embedded deployment with a stored study."""

from __future__ import annotations

import pytest


@pytest.fixture
def store_study(migrated):
    """Migrate a fresh SQLite database (extra INITLAB_* settings as keyword arguments) and store a
    study from a spec dict, as the API would after accepting it; returns the stored study."""

    def store(spec: dict, **settings: str):
        from app.domain.spec import StudySpec
        from app.storage import studies

        migrated(**settings)
        study, created = studies.create_study(StudySpec.model_validate(spec))
        assert created
        return study

    return store
