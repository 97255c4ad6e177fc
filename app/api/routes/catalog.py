"""What a study can be made of: initializers and data sets, read from the domain's registry and catalogue."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from app.domain import datasets, registry
from app.schemas.common import COMMON_RESPONSES

router = APIRouter(prefix="/api", tags=["catalog"], responses={401: COMMON_RESPONSES[401]})


@router.get("/initializers")
def list_initializers() -> list[dict[str, Any]]:
    """Every initializer: id, display name, formula, parameters with defaults, reference."""
    return registry.catalog()


@router.get("/datasets")
def list_datasets() -> list[dict[str, Any]]:
    """Every data set a study can train on."""
    return datasets.catalog()
