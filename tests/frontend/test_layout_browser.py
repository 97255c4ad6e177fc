"""Pages that keep themselves up to date and fit a phone, in a real Chromium: the compare page
follows studies while they train and shares each metric's y range across its columns, the
studies list picks up studies created elsewhere, and no page scrolls sideways at 390 px.
"""

from __future__ import annotations

import math

import pytest
from playwright.sync_api import expect

from app.storage import runs as run_store  # noqa: E402

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
COMPARE_READY = "() => document.getElementById('compare').dataset.ready === 'true'"


def _study(name: str, epochs: int = 2):
    from app.schemas.studies import StudyCreate
    from app.storage import studies

    return studies.create_study(StudyCreate(name=name, initializers=["he_normal", "ones"], seeds=[0],
                                            training={"epochs": epochs}))[0]


def _train(study, loss_scale: float, epochs: int = 2) -> None:
    from app.storage import records

    for run in study.runs:
        run_store.claim_run(run.id)
        for epoch in range(1, epochs + 1):
            records.record_epoch(run.id, epoch, {"loss": loss_scale / epoch, "accuracy": 0.5,
                                                 "val_loss": loss_scale / epoch, "val_accuracy": 0.4 + 0.1 * epoch,
                                                 "seconds": 1.0})
        run_store.finish_run(run.id, "succeeded")


def _count_requests(page, fragment: str) -> list[str]:
    seen: list[str] = []
    page.on("request", lambda request: seen.append(request.url) if fragment in request.url else None)
    return seen


# ---- the studies list picks up new studies while nothing trains --------------------------------

def test_the_study_list_shows_a_study_created_elsewhere(live_server, finished_study, page):
    page.add_init_script("window.INITLAB_REFRESH_MS = 300")  # idle pace: a few times this
    page.goto(f"{live_server}/")
    page.get_by_role("link", name=finished_study["name"]).wait_for()
    assert page.evaluate("() => [...document.querySelectorAll('#studies-table .badge')].map(b => b.textContent)") \
        and not page.locator("#studies-table .status-queued, #studies-table .status-running").count()
    other = _study("Made from the CLI")
    _train(other, 1.0)
    expect(page.get_by_role("link", name="Made from the CLI")).to_be_visible(timeout=8000)
    # A hidden tab stops asking.
    polls = _count_requests(page, "/api/studies")
    _set_hidden(page, True)
    page.wait_for_timeout(500)
    polls.clear()
    page.wait_for_timeout(3000)
    assert polls == []
    _set_hidden(page, False)
    page.wait_for_timeout(1000)
    assert polls, "polling resumes when the tab is shown again"
    assert page.watch.errors == []


def _set_hidden(page, hidden: bool) -> None:
    """The tab hidden or shown, as the browser says it (document.hidden and a visibilitychange event)."""
    page.evaluate("""(hidden) => {
        Object.defineProperty(document, 'hidden', { configurable: true, get: () => hidden });
        Object.defineProperty(document, 'visibilityState', { configurable: true, get: () => hidden ? 'hidden' : 'visible' });
        document.dispatchEvent(new Event('visibilitychange'));
    }""", hidden)


# ---- compare: follows training, shares y ranges -------------------------------------------------

def test_the_compare_page_follows_studies_while_they_train(live_server, page):
    first, second = _study("Follow me — A"), _study("Follow me — B")
    page.add_init_script("window.INITLAB_REFRESH_MS = 300")
    polls = _count_requests(page, "/api/compare")
    page.goto(f"{live_server}/compare?ids={first.id},{second.id}")
    page.wait_for_function(COMPARE_READY, timeout=20000)
    columns = page.locator("#compare-grid > section")
    expect(columns).to_have_count(2)
    assert "No epoch finished yet." in columns.nth(0).inner_text()
    _train(first, 1.0)
    _train(second, 10.0)
    for column in (columns.nth(0), columns.nth(1)):
        expect(column.locator("h2 .badge")).to_have_text("succeeded", timeout=8000)
    page.wait_for_function("""() => [...document.querySelectorAll('.compare-grid .js-plotly-plot')].every(div =>
        div.data.some(t => t.meta && t.meta.role === 'mean' && t.y.some(v => v !== null)))""", timeout=8000)
    assert "No epoch finished yet." not in page.locator("#compare-grid").inner_text()
    assert "%" in columns.nth(0).locator("tbody tr").first.inner_text()  # the verdict table was redrawn
    # Every study finished: the page stops asking.
    page.wait_for_timeout(700)
    before = len(polls)
    page.wait_for_timeout(1500)
    assert len(polls) == before, polls
    assert page.watch.errors == [] and page.watch.external() == []


def test_compare_columns_share_each_metrics_y_range(live_server, page):
    small, large = _study("Scale — small"), _study("Scale — large")
    _train(small, 1.0)
    _train(large, 12.0)
    page.goto(f"{live_server}/compare?ids={small.id},{large.id}")
    page.wait_for_function(COMPARE_READY, timeout=20000)
    ranges = page.evaluate("""() => Object.fromEntries([...document.querySelectorAll('.compare-grid .js-plotly-plot')]
        .map(div => [div.id, div._fullLayout.yaxis.range]))""")
    loss = [ranges[f"cmp-loss-{small.id}"], ranges[f"cmp-loss-{large.id}"]]
    accuracy = [ranges[f"cmp-acc-{small.id}"], ranges[f"cmp-acc-{large.id}"]]
    assert loss[0] == pytest.approx(loss[1]), loss
    assert accuracy[0] == pytest.approx(accuracy[1]), accuracy
    assert loss[0][1] >= 12.0  # the larger study's loss fits in both
    # On a log scale too (a loss 12× another's is where a log axis helps): one range, in decades.
    page.get_by_label("Loss on a log scale").check()
    page.wait_for_function(f"() => document.getElementById('cmp-loss-{small.id}')._fullLayout.yaxis.type === 'log'")
    logs = page.evaluate(f"""() => ['cmp-loss-{small.id}', 'cmp-loss-{large.id}'].map(id =>
        document.getElementById(id)._fullLayout.yaxis.range)""")
    assert logs[0] == pytest.approx(logs[1]) and logs[0][1] >= math.log10(12.0), logs


# ---- phones -------------------------------------------------------------------------------------

def test_the_study_page_fits_a_phone(live_server, finished_study, page, artifacts):
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server}/studies/{finished_study['id']}")
    page.wait_for_function("() => document.getElementById('study').dataset.ready === 'true'", timeout=30000)
    page.locator("#epochs-run option").first.wait_for(state="attached", timeout=20000)
    page.wait_for_timeout(300)
    overflow = page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")
    assert overflow <= 0, f"the page scrolls sideways by {overflow} px"
    select = page.locator("#epochs-run").bounding_box()
    panel = page.locator("#epochs-run").evaluate("(el) => el.closest('.panel').getBoundingClientRect().right")
    assert select["x"] + select["width"] <= min(panel, PHONE["width"]) + 0.5, (select, panel)
    page.screenshot(path=str(artifacts / "study_phone.png"), full_page=True)


def test_the_study_list_fits_a_phone(live_server, finished_study, page, artifacts):
    page.set_viewport_size(PHONE)
    page.goto(f"{live_server}/")
    page.get_by_role("link", name=finished_study["name"]).wait_for()
    assert page.evaluate("() => document.documentElement.scrollWidth <= window.innerWidth")
    wrap = page.locator("#studies-table").evaluate("(t) => { const w = t.closest('.table-wrap');"
                                                   " return [w.scrollWidth, w.clientWidth]; }")
    assert wrap[0] <= wrap[1], f"the studies table hides {wrap[0] - wrap[1]} px off to the right"
    for name in ("Status", "Runs"):
        box = page.get_by_role("columnheader", name=name).bounding_box()
        assert box and box["x"] + box["width"] <= PHONE["width"], (name, box)
    page.screenshot(path=str(artifacts / "index_phone.png"), full_page=True)
