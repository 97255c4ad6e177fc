"""HTML pages and static assets of the dashboard.

The pages are thin shells: the server renders the frame (and a 404 for a study
that does not exist) and the browser fills it from the JSON API. Plotly is
served from the copy bundled in the ``plotly`` Python package, so the pages
work offline: nothing is fetched from any other host.
"""

from __future__ import annotations

from pathlib import Path

import plotly
from fastapi import APIRouter, FastAPI, HTTPException, Request
from fastapi.responses import FileResponse, HTMLResponse
from fastapi.staticfiles import StaticFiles
from fastapi.templating import Jinja2Templates

from app.settings import get_settings
from app.storage import studies
from worker.training import datasets

FRONTEND_DIR = Path(__file__).resolve().parents[2] / "frontend"
TEMPLATES_DIR = FRONTEND_DIR / "templates"
STATIC_DIR = FRONTEND_DIR / "static"
PLOTLY_JS = Path(plotly.__file__).parent / "package_data" / "plotly.min.js"
# Served under the /static prefix; the route is on ``router``, which create_app
# includes before mount_static() mounts /static, so the route wins.
PLOTLY_URL = "/static/vendor/plotly.min.js"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
router = APIRouter(include_in_schema=False)


def _context(**extra: object) -> dict[str, object]:
    return {
        "refresh_ms": get_settings().page_refresh_ms,
        # The version in the URL lets the browser cache plotly.min.js for long.
        "plotly_src": f"{PLOTLY_URL}?v={plotly.__version__}",
        **extra,
    }


@router.get(PLOTLY_URL)
def plotly_js() -> FileResponse:
    if not PLOTLY_JS.is_file():  # pragma: no cover - a broken plotly install
        raise HTTPException(404, detail="plotly.min.js is missing from the plotly package")
    return FileResponse(PLOTLY_JS, media_type="text/javascript",
                        headers={"Cache-Control": "public, max-age=86400"})


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    """Study list and the form that creates a study."""
    return templates.TemplateResponse(request, "index.html", _context(page="index"))


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(request: Request, study_id: str) -> HTMLResponse:
    """One study: verdict, curves, gradients, shared-edge histograms and runs, live while it trains."""
    study = studies.get_study(int(study_id)) if study_id.isdigit() and len(study_id) < 19 else None
    if study is None:
        return templates.TemplateResponse(
            request, "404.html", _context(page="404", message=f"There is no study {study_id}."), status_code=404
        )
    names = {item["id"]: item["name"] for item in datasets.catalog()}
    return templates.TemplateResponse(request, "study.html", _context(page="study", study=study, dataset_names=names))


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request) -> HTMLResponse:
    """Two or more studies side by side; the ids come in the query (?ids=1,2) and are read by the page."""
    return templates.TemplateResponse(request, "compare.html", _context(page="compare"))


def mount_static(app: FastAPI) -> None:
    """Serve frontend/static at /static (stylesheets and the page scripts)."""
    app.mount("/static", StaticFiles(directory=str(STATIC_DIR)), name="static")
