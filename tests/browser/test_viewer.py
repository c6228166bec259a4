"""The browser, end to end: log in, open a case, upload a slide, view it in OpenSeadragon."""

from __future__ import annotations

import pytest
from playwright.sync_api import expect

from slides import synth
from tests.conftest import LOG_DIR, create_case, shared_testdata, upload, wait_until_processed

pytestmark = pytest.mark.django_db(transaction=True)


def _log_in(page, base_url: str, username: str, password: str) -> None:
    page.goto(base_url + "/")
    page.get_by_test_id("login-username").fill(username)
    page.get_by_test_id("login-password").fill(password)
    page.get_by_test_id("login-submit").click()


def test_a_wrong_password_shows_an_error(browser, asgi_server, people):
    page = browser.new_page()
    _log_in(page, asgi_server.url, "owner", "wrong")
    expect(page.get_by_test_id("login-error")).to_contain_text("wrong username or password")
    page.close()


def test_a_pathologist_opens_a_slide_in_the_viewer(browser, asgi_server, people, ingest_worker, tmp_path):
    case = create_case(people.owner.client, "S26-VIEW", organ="colon", priority="stat")
    path = synth.write_pyramidal_tiff(tmp_path / "view.svs", (6000, 4000), mpp=0.25, aperio=True)
    slide = wait_until_processed(people.owner.client, upload(people.owner.client, case["id"], path).json()["id"])
    assert slide["status"] == "ready"

    page = browser.new_page(viewport={"width": 1280, "height": 800})
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(str(exc)))
    _log_in(page, asgi_server.url, "owner", "owner-password")
    row = page.locator(f'[data-testid="case-row"][data-case-id="{case["id"]}"]')
    expect(row).to_be_visible()
    row.click()
    card = page.locator(f'[data-testid="slide-card"][data-slide-id="{slide["id"]}"]')
    expect(card).to_have_attribute("data-status", "ready")
    card.get_by_test_id("slide-open").click()
    expect(page.locator('[data-testid="viewer"][data-ready="1"]')).to_be_attached(timeout=30_000)
    expect(page.get_by_test_id("scale-bar")).to_be_visible()
    page.screenshot(path=str(LOG_DIR / "viewer.png"))
    assert errors == []
    page.close()


def test_uploading_from_the_case_page(browser, asgi_server, people, ingest_worker):
    case = create_case(people.owner.client, "S26-UPLOAD")
    page = browser.new_page()
    _log_in(page, asgi_server.url, "owner", "owner-password")
    page.locator(f'[data-testid="case-row"][data-case-id="{case["id"]}"]').click()
    page.get_by_test_id("upload-input").set_input_files(str(shared_testdata("slides", "svs", "CMU-1-Small-Region.svs")))
    page.get_by_test_id("upload-submit").click()
    expect(page.locator('[data-testid="slide-card"][data-status="ready"]')).to_have_count(1, timeout=60_000)
    # A bad file shows its reason.
    page.get_by_test_id("upload-input").set_input_files(str(shared_testdata("slides", "bad", "unopenable.tiff")))
    page.get_by_test_id("upload-submit").click()
    failed = page.locator('[data-testid="slide-card"][data-status="failed"]')
    expect(failed).to_have_count(1, timeout=60_000)
    expect(failed).to_contain_text("compression")
    page.close()


def test_another_departments_slide_does_not_open(browser, asgi_server, people, ingest_worker):
    case = create_case(people.owner.client, "S26-PRIVATE")
    response = upload(people.owner.client, case["id"], shared_testdata("slides", "svs", "small.svs"))
    wait_until_processed(people.owner.client, response.json()["id"])
    page = browser.new_page()
    _log_in(page, asgi_server.url, "outsider", "outsider-password")
    expect(page.get_by_test_id("logout")).to_be_visible()
    expect(page.get_by_test_id("case-row")).to_have_count(0)
    status = page.request.get(f"{asgi_server.url}/api/slides/{response.json()['id']}/dzi.dzi").status
    assert status == 404
    page.close()
