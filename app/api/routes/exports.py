"""``GET /api/studies/{id}/export``: a study as CSV, JSON or a zipped TensorBoard log directory.

The route only reads the rows (through app.storage) and hands them to the writers in
app/analysis/export.py. The answer streams: a run's layer rows are read when that run is
written, so memory stays at one run's worth whatever the study's size.
"""

from __future__ import annotations

from collections import defaultdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Query
from fastapi.responses import StreamingResponse

from app.analysis import export
from app.api.deps import StudyId, found
from app.schemas.common import COMMON_RESPONSES, NOT_FOUND
from app.storage import studies, views

router = APIRouter(prefix="/api", tags=["export"], responses=COMMON_RESPONSES)

MEDIA = {"csv": "text/csv; charset=utf-8", "json": "application/json", "tensorboard": "application/zip"}
EXTENSION = {"csv": "csv", "json": "json", "tensorboard": "zip"}
WRITERS = {"csv": export.csv_chunks, "json": export.json_chunks, "tensorboard": export.tensorboard_zip_chunks}
EXPORT_RESPONSES: dict[int | str, dict[str, Any]] = {200: {
    "description": "the file, as an attachment (Content-Disposition names it)",
    "content": {
        "text/csv": {"schema": {"type": "string"}},
        "application/json": {"schema": {"type": "object", "required": ["format", "version", "study", "runs"]}},
        "application/zip": {"schema": {"type": "string", "format": "binary"}},
    },
}}


def _number(value: Any) -> float | None:
    # layer_scalars hands SQLite's stored NaN back as the text 'NaN' (see views.layer_scalars).
    return None if value is None else float(value)


def _layer_reader(with_histograms: bool):
    def layers(run_id: int) -> list[dict[str, Any]]:
        rows: dict[tuple[int, str, str], dict[str, Any]] = {}
        for _run, kind, layer, index, epoch, nonfinite, *stats in views.layer_scalars({run_id: -1}):
            rows[(epoch, layer, kind)] = {
                "epoch": epoch, "layer": layer, "layer_index": index, "kind": kind,
                **{name: _number(value) for name, value in zip(("mean", "std", "min", "max", "l2"), stats)},
                "nonfinite": int(nonfinite or 0),
            }
        if with_histograms:
            for layer, kind in sorted({(layer, kind) for _epoch, layer, kind in rows}):
                for tensor in views.tensors_of_run(run_id, kind, layer):
                    row = rows.get((tensor["epoch"], layer, kind))
                    if row is not None:
                        row.update(edges=tensor["edges"], counts=tensor["counts"], quantiles=tensor["quantiles"])
        return list(rows.values())

    return layers


def study_data(study_id: int, with_histograms: bool = True) -> export.StudyData | None:
    study = studies.get_study(study_id)
    if study is None:
        return None
    metrics: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for row in views.study_epoch_metrics(study_id):
        metrics[row["run_id"]].append(row)
    header = study.model_dump(include={"id", "name", "status", "created_at", "spec"})
    return export.StudyData(study=header, runs=[run.model_dump() for run in study.runs], metrics=dict(metrics),
                            layers=_layer_reader(with_histograms), histograms=with_histograms)


@router.get("/studies/{study_id}/export", response_class=StreamingResponse, responses={**EXPORT_RESPONSES, **NOT_FOUND})
def export_study(
    study_id: StudyId,
    format: Annotated[Literal["csv", "json", "tensorboard"], Query(
        description="csv: long form (metrics, layer stats, histogram bins); json: everything incl. quantiles; "
                    "tensorboard: a zipped log directory, one folder per run")] = "csv",
    histograms: Annotated[bool, Query(description="false: leave out histograms (and quantiles): a much smaller file")] = True,
) -> StreamingResponse:
    """Download a study. NaN/Inf (diverged runs) are kept: "NaN"/"Infinity"/"-Infinity" in CSV cells and JSON strings."""
    data = found(study_data(study_id, histograms), f"study {study_id}")
    filename = f"{export.base_name(data.study)}.{EXTENSION[format]}"
    return StreamingResponse(WRITERS[format](data), media_type=MEDIA[format], headers={
        "Content-Disposition": f'attachment; filename="{filename}"', "Cache-Control": "no-store"})
