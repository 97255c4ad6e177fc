"""HTML pages and static assets of the dashboard.

The pages are thin shells: the server renders the frame (and a 404 for a study
that does not exist) and the browser fills it from the JSON API. Plotly is a
bundle of plotly.js's core with the heatmap trace (scatter and heatmap are all the pages
draw: a quarter of the full bundle's bytes, and the cold first chart in about half the
time of the partial "cartesian" build), built and vendored under frontend/static/vendor/
by frontend/update_plotly.sh, so the pages work offline:
nothing is fetched from any other host. Every static URL carries its content's
hash, so browsers keep the files for a year (app/api/static_files.py).
"""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response
from fastapi.templating import Jinja2Templates

from app.api import static_files
from app.dashboard import environment
from app.domain import datasets, registry
from app.domain.activations import ACTIVATIONS
from app.settings import get_settings
from app.storage import studies

FRONTEND_DIR = Path(__file__).resolve().parents[3] / "frontend"
TEMPLATES_DIR = FRONTEND_DIR / "templates"
STATIC_DIR = FRONTEND_DIR / "static"
# Only the trace types the pages use; frontend/update_plotly.sh refreshes it from npm.
PLOTLY = "vendor/plotly-initlab.min.js"

templates = Jinja2Templates(directory=str(TEMPLATES_DIR))
router = APIRouter(include_in_schema=False)


def static_url(name: str) -> str:
    """``/static/<name>?v=<content hash>``: templates name a file and get the URL a browser may cache for good."""
    return static_files.load(STATIC_DIR).url(name)


templates.env.globals["static_url"] = static_url
templates.env.globals["initializer_label"] = registry.label


def page_context(**extra: object) -> dict[str, object]:
    return {
        "refresh_ms": get_settings().page_refresh_ms,
        "plotly_src": static_url(PLOTLY),
        **extra,
    }


@router.get("/", response_class=HTMLResponse)
def index(request: Request) -> HTMLResponse:
    """Study list and the form that creates a study."""
    return templates.TemplateResponse(request, "index.html", page_context(
        page="index", activation_options=[(name, name) for name in ACTIVATIONS]))


@router.get("/studies/{study_id}", response_class=HTMLResponse)
def study_page(request: Request, study_id: str) -> HTMLResponse:
    """One study: verdict, curves, gradients, shared-edge histograms and runs, live while it trains."""
    study = studies.get_study(int(study_id)) if study_id.isdigit() and len(study_id) < 19 else None
    if study is None:
        return templates.TemplateResponse(
            request, "404.html", page_context(page="404", message=f"There is no study {study_id}."), status_code=404
        )
    names = {item["id"]: item["name"] for item in datasets.catalog()}
    return templates.TemplateResponse(request, "study.html", page_context(
        page="study", study=study, dataset_names=names, environments=environment.environments(study.runs)))


@router.get("/compare", response_class=HTMLResponse)
def compare_page(request: Request) -> HTMLResponse:
    """Two or more studies side by side; the ids come in the query (?ids=1,2) and are read by the page."""
    return templates.TemplateResponse(request, "compare.html", page_context(page="compare"))


@router.api_route("/static/{name:path}", methods=["GET", "HEAD"])
def static_file(request: Request, name: str, v: str | None = None) -> Response:
    """A file of frontend/static: cached for a year under its current version (``?v=``), revalidated otherwise."""
    return static_files.load(STATIC_DIR).response(name, v, request.headers.get("accept-encoding", ""),
                                                  request.headers.get("if-none-match", ""))


def mount_static(app: FastAPI) -> None:
    """Read and hash frontend/static now (the routes above serve it), so no page view waits for that."""
    static_files.load(STATIC_DIR)
