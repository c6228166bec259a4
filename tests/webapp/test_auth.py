"""Token auth for scripts, session auth (with CSRF) for the browser, and the error shape."""

from __future__ import annotations

import httpx
import pytest

pytestmark = pytest.mark.django_db(transaction=True)


def test_it_issues_a_token_that_authenticates_api_calls(people, asgi_server):
    response = people.anonymous.post("/api/auth/token/", json={"username": "owner", "password": "owner-password"})
    assert response.status_code == 200
    token = response.json()["token"]
    me = httpx.get(f"{asgi_server.url}/api/auth/me/", headers={"Authorization": f"Token {token}"})
    assert me.status_code == 200
    assert me.json()["username"] == "owner"
    assert me.json()["role"] == "pathologist"
    assert [d["code"] for d in me.json()["departments"]] == ["histo-north"]


def test_it_refuses_wrong_credentials_with_a_json_error(people):
    response = people.anonymous.post("/api/auth/token/", json={"username": "owner", "password": "nope"})
    assert response.status_code in (400, 401)
    assert response.json() == {"error": "wrong username or password"}


def test_it_answers_401_to_unauthenticated_api_calls(people):
    for path in ["/api/cases/", "/api/slides/", "/api/departments/", "/api/auth/me/"]:
        response = people.anonymous.get(path)
        assert response.status_code == 401, path
        assert "error" in response.json()


def test_it_answers_401_to_a_bad_token(asgi_server, people):
    response = httpx.get(f"{asgi_server.url}/api/cases/", headers={"Authorization": "Token not-a-real-token"})
    assert response.status_code == 401


def test_browser_login_needs_the_csrf_token(people, asgi_server):
    with httpx.Client(base_url=asgi_server.url) as browser:
        refused = browser.post("/api/auth/login/", json={"username": "owner", "password": "owner-password"})
        assert refused.status_code == 403
        assert browser.get("/api/auth/csrf/").status_code == 204
        csrf = browser.cookies["csrftoken"]
        ok = browser.post(
            "/api/auth/login/",
            json={"username": "owner", "password": "owner-password"},
            headers={"X-CSRFToken": csrf, "Referer": asgi_server.url + "/"},
        )
        assert ok.status_code == 200, ok.text
        assert browser.get("/api/auth/me/").json()["username"] == "owner"
        # A session-authenticated unsafe request without the CSRF header is refused.
        csrf = browser.cookies["csrftoken"]
        no_csrf = browser.post("/api/cases/", json={"accession_number": "X-1"})
        assert no_csrf.status_code == 403
        with_csrf = browser.post("/api/cases/", json={"accession_number": "X-1"}, headers={"X-CSRFToken": csrf})
        assert with_csrf.status_code == 201, with_csrf.text
        assert browser.post("/api/auth/logout/", headers={"X-CSRFToken": csrf}).status_code == 204
        assert browser.get("/api/auth/me/").status_code in (401, 403)


def test_unknown_api_paths_are_json_404(people):
    response = people.owner.client.get("/api/no-such-thing/")
    assert response.status_code == 404
    assert response.json() == {"error": "not found"}


def test_openapi_schema_and_docs_are_served(people):
    schema = people.owner.client.get("/api/schema/", headers={"Accept": "application/vnd.oai.openapi+json"})
    assert schema.status_code == 200
    paths = schema.json()["paths"]
    for path in ["/api/cases/", "/api/slides/", "/api/auth/token/", "/api/departments/", "/api/slides/{id}/dzi.dzi",
                 "/api/slides/{id}/dzi_files/{level}/{col}_{row}.jpeg"]:
        assert path in paths
    docs = people.owner.client.get("/api/docs/")
    assert docs.status_code == 200
    assert "swagger" in docs.text.lower()
