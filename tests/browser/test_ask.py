"""Ask OmniPath in the browser: real Chromium against uvicorn and two `celery worker -Q gpu` processes running
the tiny random checkpoint on the CPU (tests/webapp/analysis_support.py).

What the panel shows is recorded inside the page by a MutationObserver (one snapshot per DOM change, so per
websocket message), which lets the tests check how the answer grew, not only how it ended.
"""

from __future__ import annotations

import json
import os
import re
import signal
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page, WebSocketRoute, expect

from tests.conftest import LOG_DIR
from tests.webapp.analysis_support import (  # noqa: F401  (*_fixture: fixtures)
    analysis_stack_fixture,
    gpu_workers_fixture,
    held_job,
    make_case,
    ready_slide,
    tiny_checkpoint_fixture,
)

pytestmark = pytest.mark.django_db(transaction=True)

ACTIVE = ("queued", "running")

# Installed once the panel is on the page: every change inside it appends a snapshot to window.__ask.
RECORD_JS = """() => {
  const panel = document.querySelector('[data-testid="ask-panel"]');
  window.__ask = [];
  const snap = () => {
    const job = panel.querySelector('[data-testid="ask-job"]');
    const answer = panel.querySelector('[data-testid="ask-answer"]');
    window.__ask.push({
      job: job ? Number(job.dataset.jobId) : null,
      status: job ? job.dataset.status : null,
      connection: job ? (job.dataset.connection || null) : null,
      text: answer ? answer.textContent : null,
      tokens: answer ? Number(answer.dataset.tokens) : null,
      askDisabled: panel.querySelector('[data-testid="ask-submit"]').disabled,
    });
  };
  new MutationObserver(snap).observe(panel, {subtree: true, childList: true, characterData: true, attributes: true});
}"""


@pytest.fixture
def slide(people):
    return ready_slide(make_case(people.department, "S26-ASK-UI"))


def _open_slide(browser, base_url: str, username: str, slide_id: int) -> tuple[Page, list[str]]:
    page = browser.new_page(viewport={"width": 1440, "height": 900})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    page.goto(base_url + "/")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(f"{username}-password")
    page.get_by_test_id("login-submit").click()
    expect(page.get_by_test_id("logout")).to_be_visible()
    page.goto(f"{base_url}/slides/{slide_id}")
    return page, errors


def _wait_for_panel(page: Page) -> None:
    expect(page.locator('[data-testid="viewer"][data-ready="1"]')).to_be_attached(timeout=30_000)
    expect(page.get_by_test_id("ask-task")).to_be_enabled()
    expect(page.get_by_test_id("ask-history").get_by_test_id("ask-history-refresh")).to_be_visible()


def _ask(page: Page, prompt: str, *, task: str | None = None, max_tokens: int | None = None) -> None:
    if task:
        page.get_by_test_id("ask-task").select_option(task)
    page.get_by_test_id("ask-prompt").fill(prompt)
    page.get_by_test_id("ask-max-tokens").fill("" if max_tokens is None else str(max_tokens))
    page.get_by_test_id("ask-submit").click()


def _snapshots(page: Page, job_id: int) -> list[dict]:
    return [s for s in page.evaluate("window.__ask") if s["job"] == job_id]


def _job_id(page: Page) -> int:
    job = page.get_by_test_id("ask-job")
    expect(job).to_have_attribute("data-job-id", re.compile(r"^\d+$"))
    return int(job.get_attribute("data-job-id"))


def _api(page: Page, base_url: str, path: str) -> dict:
    """GET with the page's own session: what this user may see."""
    response = page.request.get(base_url + path)
    assert response.ok, (response.status, response.text())
    return response.json()


def _stable_visible_region(page: Page) -> list[int]:
    """The viewer's level-0 view (data-visible-region) once the zoom/pan animation has settled."""
    viewer = page.get_by_test_id("viewer")
    last, since = None, time.monotonic()
    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        current = viewer.get_attribute("data-visible-region")
        if current != last:
            last, since = current, time.monotonic()
        elif current and time.monotonic() - since > 0.8:
            return [int(v) for v in current.split(",")]
        page.wait_for_timeout(100)
    raise AssertionError(f"the view did not settle: {last}")


def _assert_grew_then_matched(snapshots: list[dict], final_text: str) -> None:
    """Partial answers seen while the job ran: at least two, each extending the last, ending on the stored text."""
    partial = [s for s in snapshots if s["status"] in ACTIVE and s["text"]]
    texts = list(dict.fromkeys(s["text"] for s in partial))
    assert len(texts) >= 2, f"the answer did not visibly grow before it was done: {texts}"
    for shorter, longer in zip(texts, texts[1:], strict=False):
        assert longer.startswith(shorter) and len(longer) > len(shorter), (shorter, longer)
    counts = [s["tokens"] for s in partial]
    assert counts == sorted(counts) and counts[-1] > counts[0], counts
    # Everything streamed before `done` already was the whole answer: nothing lost, nothing doubled.
    assert texts[-1] == final_text


def test_the_answer_streams_in_and_its_regions_are_drawn_on_the_slide(browser, asgi_server, people, slide,
                                                                       analysis_stack):
    url = asgi_server.url
    page, errors = _open_slide(browser, url, "owner", slide.pk)
    _wait_for_panel(page)
    model = _api(page, url, "/api/analyses/model/")
    options = page.get_by_test_id("ask-task").locator("option").evaluate_all("os => os.map(o => o.value)")
    assert options == model["tasks"] and "cancer_detection" in options
    expect(page.get_by_test_id("ask-model-notice")).to_contain_text("not a diagnosis")
    expect(page.get_by_test_id("ask-prompt-count")).to_have_text(f"0 / {model['prompt_max_chars']:,}")
    expect(page.get_by_test_id("ask-history-empty")).to_be_visible()
    page.evaluate(RECORD_JS)

    _ask(page, "Is there invasive carcinoma?", task="cancer_detection", max_tokens=48)
    job_id = _job_id(page)
    job_view = page.get_by_test_id("ask-job")
    expect(job_view).to_have_attribute("data-status", "succeeded", timeout=90_000)
    stored = _api(page, url, f"/api/analyses/{job_id}/")
    assert stored["status"] == "succeeded" and stored["task"] == "cancer_detection"
    assert stored["max_new_tokens"] == 48 and stored["region"] is None

    snapshots = _snapshots(page, job_id)
    _assert_grew_then_matched(snapshots, stored["text"])
    assert any(s["askDisabled"] for s in page.evaluate("window.__ask")), "Ask stayed enabled during the request"
    expect(page.get_by_test_id("ask-submit")).to_be_enabled()
    assert page.get_by_test_id("ask-answer").text_content() == stored["text"] != ""
    notice = page.get_by_test_id("ask-demo-notice")
    expect(notice).to_be_visible()
    expect(notice).to_contain_text(stored["notice"])
    expect(page.get_by_test_id("ask-cancel")).to_be_hidden()
    expect(page.get_by_test_id("ask-progress")).to_be_hidden()
    expect(page.get_by_test_id("ask-model")).to_contain_text(stored["model"])

    # One overlay per region, at the region's level-0 box.
    regions = stored["regions"]
    assert regions
    overlays = page.locator('[data-testid="region-overlay"]')
    expect(overlays).to_have_count(len(regions))
    expect(page.get_by_test_id("ask-region")).to_have_count(len(regions))
    assert page.locator('[data-testid="roi-overlay"]').count() == 0
    drawn = overlays.evaluate_all("os => os.map(o => o.dataset.box)")
    assert [[float(v) for v in box.split(",")] for box in drawn] == [r["box"] for r in regions]

    # Clicking a region's box zooms there: the view is then centred on it, and the box is drawn where the
    # view's level-0 coordinates say it is.
    width, height = slide.metadata["width"], slide.metadata["height"]
    index = min(range(len(regions)), key=lambda i: abs(regions[i]["box"][0] + regions[i]["box"][2] / 2 - width / 2)
                + abs(regions[i]["box"][1] + regions[i]["box"][3] / 2 - height / 2))
    x, y, w, h = regions[index]["box"]
    overlays.nth(index).click()
    vx, vy, vw, vh = _stable_visible_region(page)
    assert vw < width and vh < height, "the view did not zoom in"
    assert vx < x + w / 2 < vx + vw and vy < y + h / 2 < vy + vh
    view = page.get_by_test_id("viewer").bounding_box()
    if vx > 0 and vy > 0 and vx + vw < width and vy + vh < height:  # not clamped: a linear map to the screen
        box = overlays.nth(index).bounding_box()
        assert box["x"] == pytest.approx(view["x"] + (x - vx) / vw * view["width"], abs=4)
        assert box["y"] == pytest.approx(view["y"] + (y - vy) / vh * view["height"], abs=4)
        assert box["width"] == pytest.approx(w / vw * view["width"], abs=4)
        assert box["height"] == pytest.approx(h / vh * view["height"], abs=4)

    # The list: the job, who asked, its state.
    row = page.locator(f'[data-testid="ask-history-item"][data-job-id="{job_id}"]')
    expect(row).to_have_attribute("data-status", "succeeded")
    expect(row).to_contain_text("Cancer detection")
    expect(row).to_contain_text("Is there invasive carcinoma?")
    expect(row.get_by_test_id("ask-history-asker")).to_contain_text("you")

    # Another job shown: the first one's boxes go; shown again, they come back.
    other = held_job(slide, people.colleague.user)
    page.get_by_test_id("ask-history-refresh").click()
    page.locator(f'[data-testid="ask-history-item"][data-job-id="{other.pk}"]').click()
    expect(job_view).to_have_attribute("data-job-id", str(other.pk))
    expect(job_view).to_have_attribute("data-status", "queued")
    expect(overlays).to_have_count(0)
    expect(page.get_by_test_id("ask-region")).to_have_count(0)
    expect(page.get_by_test_id("ask-demo-notice")).to_be_hidden()  # held jobs are not marked demo
    expect(page.locator(f'[data-testid="ask-history-item"][data-job-id="{other.pk}"]')).to_contain_text("colleague")
    row.click()
    expect(job_view).to_have_attribute("data-job-id", str(job_id))
    expect(overlays).to_have_count(len(regions))
    assert page.get_by_test_id("ask-answer").text_content() == stored["text"]
    page.screenshot(path=str(LOG_DIR / "ask.png"))
    assert errors == []
    page.close()


def test_a_dropped_connection_resumes_after_the_last_message(browser, asgi_server, people, slide, analysis_stack):
    """The first websocket is cut after three tokens; the panel reconnects with ?after=<last seq> and the text
    comes out whole, once. The question is limited to the zoomed-in view."""
    url = asgi_server.url
    page, errors = _open_slide(browser, url, "owner", slide.pk)
    _wait_for_panel(page)

    connections: list[str] = []
    cut: dict = {}

    def route(ws: WebSocketRoute) -> None:
        connections.append(ws.url)
        server = ws.connect_to_server()
        first = len(connections) == 1
        tokens = 0

        def from_server(message: str | bytes) -> None:
            nonlocal tokens
            if first and cut:
                return  # the connection is gone: nothing more reaches the page on it
            ws.send(message)
            data = json.loads(message)
            if first and data["type"] == "token":
                tokens += 1
                if tokens == 3:
                    cut["seq"] = data["seq"]
                    ws.close(code=1012, reason="test: connection dropped")
                    server.close()

        server.on_message(from_server)

    page.route_web_socket(re.compile(r"/ws/analyses/\d+/"), route)

    # Zoom in on the middle of the slide, then ask about what is on screen.
    viewer = page.get_by_test_id("viewer").bounding_box()
    page.mouse.move(viewer["x"] + viewer["width"] / 2, viewer["y"] + viewer["height"] / 2)
    for _ in range(4):
        page.mouse.wheel(0, -120)
        page.wait_for_timeout(50)
    width, height = slide.metadata["width"], slide.metadata["height"]
    visible = _stable_visible_region(page)
    assert visible[2] < width and visible[3] < height
    page.get_by_test_id("ask-limit-view").check()
    page.evaluate(RECORD_JS)
    _ask(page, "Describe what you see here.", max_tokens=96)
    job_id = _job_id(page)
    expect(page.get_by_test_id("ask-job")).to_have_attribute("data-status", "succeeded", timeout=90_000)
    stored = _api(page, url, f"/api/analyses/{job_id}/")

    assert cut, "the stream ended before the test could cut it"
    assert len(connections) == 2, connections
    assert connections[0].endswith(f"/ws/analyses/{job_id}/")
    assert connections[1].endswith(f"/ws/analyses/{job_id}/?after={cut['seq']}")
    snapshots = _snapshots(page, job_id)
    assert "reconnecting" in {s["connection"] for s in snapshots}
    _assert_grew_then_matched(snapshots, stored["text"])
    assert page.get_by_test_id("ask-answer").text_content() == stored["text"]

    # The region sent was the view on screen, inside the slide; it is drawn dashed on the slide.
    assert stored["region"] == visible
    x, y, w, h = (int(v) for v in stored["region"])
    assert x >= 0 and y >= 0 and x + w <= width and y + h <= height
    expect(page.locator('[data-testid="roi-overlay"]')).to_have_count(1)
    expect(page.get_by_test_id("ask-job")).to_contain_text(f"limited to {w:,} × {h:,} px")
    expect(page.locator('[data-testid="region-overlay"]')).to_have_count(len(stored["regions"]))
    assert errors == []
    page.close()


def test_cancel_stops_the_job_in_the_panel_and_on_the_server(browser, asgi_server, people, slide, analysis_stack):
    url = asgi_server.url
    page, errors = _open_slide(browser, url, "owner", slide.pk)
    _wait_for_panel(page)
    prompt = "Grade this <b>tumour</b> <img src=x onerror=\"window.pwned=1\">"
    _ask(page, prompt, task="grading", max_tokens=1000)
    job_id = _job_id(page)
    # What people and the model write is shown as text, never as markup.
    question = page.get_by_test_id("ask-question")
    assert question.text_content() == prompt
    assert question.locator("b, img").count() == 0
    page.wait_for_function(
        "Number(document.querySelector('[data-testid=\"ask-answer\"]').dataset.tokens) >= 2", timeout=90_000)
    cancel = page.get_by_test_id("ask-cancel")
    expect(cancel).to_be_visible()
    cancel.click()
    job_view = page.get_by_test_id("ask-job")
    expect(job_view).to_have_attribute("data-status", "cancelled", timeout=30_000)
    expect(page.get_by_test_id("ask-status")).to_have_text("Cancelled")
    expect(cancel).to_be_hidden()
    stored = _api(page, url, f"/api/analyses/{job_id}/")
    assert stored["status"] == "cancelled" and stored["cancel_requested"] is True
    assert 2 <= stored["result"]["generated_tokens"] < 1000
    assert page.get_by_test_id("ask-answer").text_content() == stored["text"] != ""
    expect(page.get_by_test_id("ask-demo-notice")).to_be_visible()  # a partial answer is still noise
    history_row = page.locator(f'[data-testid="ask-history-item"][data-job-id="{job_id}"]')
    expect(history_row).to_have_attribute("data-status", "cancelled")
    assert history_row.locator("b, img").count() == 0
    assert page.evaluate("window.pwned") is None
    assert errors == []
    page.close()


def test_a_refused_question_shows_the_servers_reason_and_makes_no_job(browser, asgi_server, people, slide,
                                                                      tiny_checkpoint):
    from webapp.analysis.models import AnalysisJob

    url = asgi_server.url
    page, errors = _open_slide(browser, url, "owner", slide.pk)
    _wait_for_panel(page)
    limit = _api(page, url, "/api/analyses/model/")["prompt_max_chars"]
    error = page.get_by_test_id("ask-error")

    def server_says(**body) -> str:
        response = people.owner.client.post("/api/analyses/", json={"slide": slide.pk, "task": "question", **body})
        assert response.status_code == 400, response.text
        return response.json()["error"]

    _ask(page, "   ")
    expect(error).to_have_text(server_says(prompt="   "))
    expect(error).to_contain_text("prompt")

    too_long = "x" * (limit + 1)
    page.get_by_test_id("ask-prompt").fill(too_long)
    counter = page.get_by_test_id("ask-prompt-count")
    expect(counter).to_have_text(f"{limit + 1:,} / {limit:,}")
    expect(counter).to_have_class(re.compile(r"\bover\b"))
    page.get_by_test_id("ask-submit").click()
    expect(error).to_have_text(server_says(prompt=too_long))
    expect(error).to_contain_text(f"at most {limit} characters")

    _ask(page, "Is it benign?", max_tokens=100_000)
    expect(error).to_have_text(server_says(prompt="Is it benign?", max_new_tokens=100_000))

    expect(page.get_by_test_id("ask-job")).to_have_count(0)
    expect(page.get_by_test_id("ask-history-empty")).to_be_visible()
    assert AnalysisJob.objects.count() == 0
    assert errors == []
    page.close()


def test_a_department_follows_a_job_and_another_department_sees_none(browser, asgi_server, people, slide,
                                                                      tiny_checkpoint):
    """A colleague picks the owner's queued job from the list and sees its cancel arrive over the websocket;
    a user of another department gets neither the slide, nor the list, nor the stream."""
    url = asgi_server.url
    job = held_job(slide, people.owner.user, demo_weights=True)

    page, errors = _open_slide(browser, url, "colleague", slide.pk)
    _wait_for_panel(page)
    row = page.locator(f'[data-testid="ask-history-item"][data-job-id="{job.pk}"]')
    expect(row).to_have_attribute("data-status", "queued")
    expect(row.get_by_test_id("ask-history-asker")).to_contain_text("owner")
    row.click()
    job_view = page.get_by_test_id("ask-job")
    expect(job_view).to_have_attribute("data-status", "queued")
    expect(job_view).to_have_attribute("data-connection", "open")
    expect(page.get_by_test_id("ask-demo-notice")).to_contain_text("not a diagnosis")
    expect(page.get_by_test_id("ask-cancel")).to_be_visible()

    assert people.owner.client.post(f"/api/analyses/{job.pk}/cancel/").status_code == 200
    expect(job_view).to_have_attribute("data-status", "cancelled")
    expect(job_view).to_have_attribute("data-connection", "ended")
    expect(row).to_have_attribute("data-status", "cancelled")
    expect(page.get_by_test_id("ask-cancel")).to_be_hidden()
    assert errors == []
    page.close()

    outsider, errors = _open_slide(browser, url, "outsider", slide.pk)
    expect(outsider.get_by_test_id("page-error")).to_contain_text("Not found")
    expect(outsider.get_by_test_id("ask-panel")).to_have_count(0)
    assert _api(outsider, url, f"/api/analyses/?slide={slide.pk}")["results"] == []
    assert outsider.request.get(f"{url}/api/analyses/{job.pk}/").status == 404
    close_code = outsider.evaluate("""(id) => new Promise((resolve) => {
      const ws = new WebSocket(`ws://${location.host}/ws/analyses/${id}/`);
      ws.onclose = (ev) => resolve(ev.code);
    })""", job.pk)
    assert close_code == 4404
    assert errors == []
    outsider.close()


def _pool_child(main_pid: int) -> int:
    children = Path(f"/proc/{main_pid}/task/{main_pid}/children").read_text().split()
    assert len(children) == 1, children
    return int(children[0])


def test_a_rerun_after_a_lost_worker_replaces_the_text(browser, asgi_server, people, slide, analysis_stack):
    """The model process dies mid-answer: the stream says `restart`, the panel drops the text so far and shows
    the re-run's answer alone."""
    from webapp.analysis.models import AnalysisJob

    url = asgi_server.url
    page, errors = _open_slide(browser, url, "owner", slide.pk)
    _wait_for_panel(page)
    page.evaluate(RECORD_JS)
    # Long enough to be killed mid-answer, short enough to finish within the tests' visibility timeout.
    _ask(page, "Is there vascular invasion?", task="vascular_invasion", max_tokens=320)
    job_id = _job_id(page)
    page.wait_for_function(
        "Number(document.querySelector('[data-testid=\"ask-answer\"]').dataset.tokens) >= 1", timeout=90_000)
    victim = analysis_stack.running(AnalysisJob.objects.get(pk=job_id).worker)
    os.kill(_pool_child(victim.process.pid), signal.SIGKILL)
    expect(page.get_by_test_id("ask-job")).to_have_attribute("data-status", "succeeded", timeout=90_000)
    stored = _api(page, url, f"/api/analyses/{job_id}/")
    assert stored["attempt"] == 2

    running = [s for s in _snapshots(page, job_id) if s["status"] in ACTIVE]
    texts = [s["text"] for s in running]
    # The restart: text on screen, then none.
    dropped = [i for i in range(1, len(texts)) if texts[i - 1] and not texts[i]]
    assert len(dropped) == 1, texts
    _assert_grew_then_matched(running[dropped[0]:], stored["text"])
    expect(page.get_by_test_id("ask-restart-note")).to_be_visible()
    assert page.get_by_test_id("ask-answer").text_content() == stored["text"]
    expect(page.get_by_test_id("ask-model")).to_contain_text("run 2 times")
    assert errors == []
    page.close()
