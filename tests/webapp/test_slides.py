"""Slides end to end: upload over HTTP → Celery ingestion → metadata, DeepZoom tiles, thumbnails.

Runs against the real ASGI server, a real Celery worker, PostgreSQL and Redis.
"""

from __future__ import annotations

import io
import math
import os
import socket
import time
import xml.etree.ElementTree as ET
import zipfile
from pathlib import Path

import httpx
import pytest
from PIL import Image

from slides import synth
from tests.conftest import create_case, shared_testdata, upload, wait_until_processed

pytestmark = pytest.mark.django_db(transaction=True)

# What OpenSlide 4.0.1 reports for the real third-party files (../shared/testdata/slides/SOURCES.md).
# The generic TIFFs' ~352.8 µm/px is a 72-dpi resolution tag, not a calibration: we report None.
GOOD_SLIDES = {
    "svs/CMU-1-Small-Region.svs": ("aperio", 2220, 2967, [1.0], 0.499, 20, ["label", "macro", "thumbnail"]),
    "svs/small.svs": ("aperio", 16, 16, [1.0], 0.499, 20, ["thumbnail"]),
    # Uploaded alone, without boxes_1.dcm (the series' thumbnail instance): no associated thumbnail.
    "dicom/boxes/boxes_0.dcm": ("dicom", 16, 16, [1.0], 0.499, 20, []),
    "dicom/wsi2dcm-jpeg/jpeg.dicom": ("dicom", 957, 715, [1.0], 16.783, None, []),
    "tiff/boxes.tiff": ("generic-tiff", 300, 250, [1.0, 2.0, 4.016, 8.086], None, None, []),
    "tiff/yb10kx5k.zstd.tiff": ("generic-tiff", 10000, 5000, [1.0, 2.0, 4.0, 8.0, 16.013], None, None, []),
}
BAD_SLIDES = ["OT-MONO2-8-colon.dcm", "base64-text.svs", "sm_annotations.dcm", "unopenable.tiff", "unreadable.svs"]


@pytest.fixture
def case(people) -> dict:
    return create_case(people.owner.client, "S26-SLIDES")


def _ingested(client: httpx.Client, case_id: int, path: Path, filename: str | None = None) -> dict:
    response = upload(client, case_id, path, filename)
    assert response.status_code == 201, response.text
    created = response.json()
    assert created["status"] == "pending"
    return wait_until_processed(client, created["id"])


def _dzi(client: httpx.Client, slide_id: int) -> tuple[int, int, int, int]:
    response = client.get(f"/api/slides/{slide_id}/dzi.dzi")
    assert response.status_code == 200, response.text
    root = ET.fromstring(response.text)
    size = root.find("{http://schemas.microsoft.com/deepzoom/2008}Size")
    return int(root.get("TileSize")), int(root.get("Overlap")), int(size.get("Width")), int(size.get("Height"))


def test_every_good_real_slide_is_ingested_and_served(people, case, ingest_worker):
    client = people.owner.client
    for relative, (fmt, width, height, downsamples, mpp, objective, associated) in GOOD_SLIDES.items():
        slide = _ingested(client, case["id"], shared_testdata("slides", relative))
        assert slide["status"] == "ready", (relative, slide.get("error"))
        assert slide["format"] == fmt, relative
        assert (slide["width"], slide["height"]) == (width, height), relative
        assert slide["level_count"] == len(downsamples)
        assert slide["level_downsamples"] == pytest.approx(downsamples, abs=1e-3), relative
        if mpp is None:
            assert slide["mpp_x"] is None and slide["mpp_y"] is None, relative
        else:
            assert slide["mpp_x"] == pytest.approx(mpp, abs=1e-3), relative
        assert slide["objective_power"] == objective, relative
        assert sorted(slide["associated_images"]) == sorted(associated), relative
        assert slide["error"] is None

        tile_size, overlap, dzi_w, dzi_h = _dzi(client, slide["id"])
        assert (dzi_w, dzi_h) == (width, height)
        top = math.ceil(math.log2(max(width, height)))
        tile = client.get(f"/api/slides/{slide['id']}/dzi_files/{top}/0_0.jpeg")
        assert tile.status_code == 200, (relative, tile.text)
        assert tile.headers["content-type"] == "image/jpeg"
        image = Image.open(io.BytesIO(tile.content))
        assert image.format == "JPEG"
        expected_w = min(width, tile_size + overlap)
        expected_h = min(height, tile_size + overlap)
        assert image.size == (expected_w, expected_h), relative

        thumb = client.get(f"/api/slides/{slide['id']}/thumbnail.jpeg")
        assert thumb.status_code == 200
        assert Image.open(io.BytesIO(thumb.content)).format == "JPEG"
        for name in associated:
            image = client.get(f"/api/slides/{slide['id']}/associated/{name}.jpeg")
            assert image.status_code == 200, (relative, name)
            assert Image.open(io.BytesIO(image.content)).format == "JPEG"


def test_every_bad_real_file_fails_with_a_reason_and_the_worker_survives(people, case, ingest_worker):
    client = people.owner.client
    for name in BAD_SLIDES:
        slide = _ingested(client, case["id"], shared_testdata("slides", "bad", name))
        assert slide["status"] == "failed", name
        assert slide["error"] and len(slide["error"]) > 10, name
        assert "Traceback" not in slide["error"]
        for path in [f"/api/slides/{slide['id']}/dzi.dzi", f"/api/slides/{slide['id']}/dzi_files/0/0_0.jpeg",
                     f"/api/slides/{slide['id']}/thumbnail.jpeg"]:
            refused = client.get(path)
            assert refused.status_code == 409, path
            assert "could not be processed" in refused.json()["error"]
    assert ingest_worker.process.poll() is None
    # Still working after all that: a good slide goes through.
    assert _ingested(client, case["id"], shared_testdata("slides", "svs", "small.svs"))["status"] == "ready"


@pytest.mark.parametrize(
    ("writer", "filename", "words"),
    [
        (synth.write_png_photo, "photo.png", "png"),
        (synth.write_jpeg_photo, "photo.jpg", "jpeg"),
        (synth.write_plain_tiff, "scan.tif", "tiff"),
    ],
)
def test_plain_images_are_refused_with_a_reason(people, case, ingest_worker, tmp_path, writer, filename, words):
    path = writer(tmp_path / filename)
    slide = _ingested(people.owner.client, case["id"], path)
    assert slide["status"] == "failed"
    assert words in slide["error"].lower()


def test_a_zero_byte_upload_is_refused_and_nothing_is_stored(people, case, tmp_path, settings):
    empty = tmp_path / "empty.svs"
    empty.write_bytes(b"")
    response = upload(people.owner.client, case["id"], empty)
    assert response.status_code == 400
    assert "empty" in response.json()["error"]
    assert people.owner.client.get(f"/api/slides/?case={case['id']}").json()["count"] == 0
    assert list((Path(os.environ["MEDIA_ROOT"]) / "tmp").glob("upload-*")) == []


def test_a_hostile_filename_is_kept_as_text_only(people, case, ingest_worker):
    name = "../../etc/Präparat 東京 ☃.svs"
    slide = _ingested(people.owner.client, case["id"], shared_testdata("slides", "svs", "small.svs"), filename=name)
    assert slide["status"] == "ready"
    assert slide["filename"] == "Präparat 東京 ☃.svs"
    from webapp.wsi.models import Slide

    stored = Slide.objects.get(pk=slide["id"]).stored_path
    assert ".." not in stored and "Präparat" not in stored
    assert stored.startswith(f"slides/{slide['sha256'][:2]}/{slide['sha256']}/")


def test_the_same_content_is_stored_once(people, case, ingest_worker):
    media = Path(os.environ["MEDIA_ROOT"])
    first = _ingested(people.owner.client, case["id"], shared_testdata("slides", "tiff", "boxes.tiff"))
    second = _ingested(people.owner.client, case["id"], shared_testdata("slides", "tiff", "boxes.tiff"), "copy.tiff")
    assert first["id"] != second["id"]
    assert first["sha256"] == second["sha256"]
    assert len(list((media / "slides" / first["sha256"][:2] / first["sha256"]).iterdir())) == 1
    assert second["status"] == "ready"


def test_an_upload_over_the_limit_is_413_and_leaves_nothing(people, case, tmp_path):
    limit = int(os.environ["SLIDE_UPLOAD_MAX_BYTES"])
    big = tmp_path / "big.svs"
    with big.open("wb") as handle:
        handle.truncate(limit + 2 * 1024 * 1024)
    response = upload(people.owner.client, case["id"], big)
    assert response.status_code == 413
    assert "limit" in response.json()["error"]
    assert people.owner.client.get(f"/api/slides/?case={case['id']}").json()["count"] == 0
    assert list((Path(os.environ["MEDIA_ROOT"]) / "tmp").glob("upload-*")) == []


def test_a_declared_oversized_body_is_refused_before_it_is_sent(people, asgi_server):
    limit = int(os.environ["SLIDE_UPLOAD_MAX_BYTES"])
    host, port = asgi_server.url.removeprefix("http://").split(":")
    token = people.owner.client.headers["Authorization"]
    request = (
        f"POST /api/slides/ HTTP/1.1\r\nHost: {host}:{port}\r\nAuthorization: {token}\r\n"
        f"Content-Type: multipart/form-data; boundary=x\r\nContent-Length: {limit * 10}\r\n\r\n"
    )
    # Only the headers are sent: the answer must come without the server waiting for the body.
    with socket.create_connection((host, int(port)), timeout=10) as conn:
        conn.sendall(request.encode())
        answer = b""
        while b"}" not in answer:
            chunk = conn.recv(4096)
            if not chunk:
                break
            answer += chunk
    answer = answer.decode()
    assert answer.startswith("HTTP/1.1 413"), answer
    assert "limit" in answer


def test_a_case_of_another_department_cannot_receive_slides(people, case):
    response = upload(people.outsider.client, case["id"], shared_testdata("slides", "svs", "small.svs"))
    assert response.status_code == 400
    assert response.json()["error"] == "case: no such case"


def test_another_departments_slide_is_404_everywhere(people, case, ingest_worker):
    slide = _ingested(people.owner.client, case["id"], shared_testdata("slides", "svs", "CMU-1-Small-Region.svs"))
    base = f"/api/slides/{slide['id']}"
    for path in [f"{base}/", f"{base}/dzi.dzi", f"{base}/dzi_files/12/0_0.jpeg", f"{base}/thumbnail.jpeg",
                 f"{base}/associated/label.jpeg"]:
        assert people.outsider.client.get(path).status_code == 404, path
        assert people.anonymous.get(path).status_code == 401, path
        assert people.colleague.client.get(path).status_code == 200, path
    assert people.outsider.client.get(f"/api/slides/?case={case['id']}").json()["count"] == 0


def test_tiles_out_of_range_are_404(people, case, ingest_worker):
    slide = _ingested(people.owner.client, case["id"], shared_testdata("slides", "tiff", "boxes.tiff"))
    base = f"/api/slides/{slide['id']}/dzi_files"
    # 300×250 → DeepZoom levels 0..9; level 9 is 2×1 tiles of 254 px.
    assert people.owner.client.get(f"{base}/9/1_0.jpeg").status_code == 200
    for path in [f"{base}/10/0_0.jpeg", f"{base}/9/2_0.jpeg", f"{base}/9/0_1.jpeg", f"{base}/0/1_0.jpeg"]:
        response = people.owner.client.get(path)
        assert response.status_code == 404, path
        assert "error" in response.json()
    assert people.owner.client.get(f"/api/slides/{slide['id']}/associated/label.jpeg").status_code == 404


def test_tiles_of_a_pending_slide_are_409(people, case):
    from webapp.wsi.models import Slide

    # Created directly, never queued: it stays pending whatever the worker does.
    slide_id = Slide.objects.create(
        case_id=case["id"], stored_path="slides/00/none/slide.svs", sha256="0" * 64, size=1
    ).pk
    refused = people.owner.client.get(f"/api/slides/{slide_id}/dzi_files/0/0_0.jpeg")
    assert refused.status_code == 409
    assert "still being processed" in refused.json()["error"]


def test_tiles_carry_etags_and_immutable_cache_headers(people, case, ingest_worker):
    slide = _ingested(people.owner.client, case["id"], shared_testdata("slides", "svs", "CMU-1-Small-Region.svs"))
    url = f"/api/slides/{slide['id']}/dzi_files/11/3_4.jpeg"
    first = people.owner.client.get(url)
    assert first.status_code == 200
    assert "immutable" in first.headers["cache-control"]
    etag = first.headers["etag"]
    again = people.owner.client.get(url, headers={"If-None-Match": etag})
    assert again.status_code == 304
    assert again.content == b""
    cached = people.owner.client.get(url)
    assert cached.content == first.content


def test_generated_slides_with_and_without_calibration(people, case, ingest_worker, tmp_path):
    calibrated = synth.write_pyramidal_tiff(tmp_path / "aperio.svs", (3000, 2000), mpp=0.25, aperio=True,
                                            objective_power=40, jpeg_tables=True)
    bare = synth.write_pyramidal_tiff(tmp_path / "bare.tiff", (3000, 2000), mpp=None)
    a = _ingested(people.owner.client, case["id"], calibrated)
    b = _ingested(people.owner.client, case["id"], bare)
    assert (a["status"], b["status"]) == ("ready", "ready")
    assert a["format"] == "aperio" and a["mpp_x"] == pytest.approx(0.25) and a["objective_power"] == 40
    assert b["format"] == "generic-tiff" and b["mpp_x"] is None and b["objective_power"] is None
    assert 0.05 < a["tissue_fraction"] < 0.95
    assert a["level_count"] == 3


def test_tile_access_ends_with_the_session(people, case, ingest_worker, asgi_server):
    slide = _ingested(people.owner.client, case["id"], shared_testdata("slides", "svs", "small.svs"))
    url = f"/api/slides/{slide['id']}/dzi_files/4/0_0.jpeg"
    with httpx.Client(base_url=asgi_server.url) as browser:
        browser.get("/api/auth/csrf/")
        csrf = browser.cookies["csrftoken"]
        login = browser.post("/api/auth/login/", json={"username": "owner", "password": "owner-password"},
                             headers={"X-CSRFToken": csrf})
        assert login.status_code == 200
        assert browser.get(url).status_code == 200
        assert browser.head(url).status_code == 200
        session = browser.cookies["sessionid"]
        assert browser.post("/api/auth/logout/", headers={"X-CSRFToken": browser.cookies["csrftoken"]}).status_code == 204
    time.sleep(1.2)  # TILE_ACCESS_TTL in tests
    stale = httpx.get(asgi_server.url + url, cookies={"sessionid": session})
    assert stale.status_code == 401
    assert stale.json() == {"error": "authentication required"}


def test_a_tile_request_with_another_scheme_is_401(people, case, asgi_server):
    response = httpx.get(f"{asgi_server.url}/api/slides/1/dzi.dzi", headers={"Authorization": "Basic b3duZXI6eA=="})
    assert response.status_code == 401
    assert "Token" in response.json()["error"]


def _zip(path: Path, members: dict[str, bytes | Path], compression=zipfile.ZIP_STORED) -> Path:
    with zipfile.ZipFile(path, "w", compression=compression) as archive:
        for name, content in members.items():
            archive.writestr(name, content.read_bytes() if isinstance(content, Path) else content)
    return path


def test_a_dicom_series_uploaded_as_a_zip_is_read_whole(people, case, ingest_worker, tmp_path):
    series = shared_testdata("slides", "dicom", "boxes")
    archive = _zip(tmp_path / "boxes.zip", {"series/boxes_0.dcm": series / "boxes_0.dcm",
                                           "series/boxes_1.dcm": series / "boxes_1.dcm"})
    slide = _ingested(people.owner.client, case["id"], archive)
    assert slide["status"] == "ready", slide["error"]
    # With both instances, OpenSlide sees the series' thumbnail too (SOURCES.md).
    assert (slide["format"], slide["width"], slide["height"]) == ("dicom", 16, 16)
    assert slide["associated_images"] == ["thumbnail"]
    assert people.owner.client.get(f"/api/slides/{slide['id']}/dzi_files/4/0_0.jpeg").status_code == 200
    assert people.owner.client.get(f"/api/slides/{slide['id']}/associated/thumbnail.jpeg").status_code == 200


@pytest.mark.parametrize(
    ("members", "compression", "words"),
    [
        ({"../../evil.dcm": b"DICM"}, zipfile.ZIP_STORED, "unsafe path"),
        ({"notes.txt": b"hello", "more.txt": b"world"}, zipfile.ZIP_STORED, "exactly one slide"),
        ({"bomb.dcm": b"\0" * (64 * 1024 * 1024)}, zipfile.ZIP_DEFLATED, "archive bomb"),
    ],
)
def test_bad_archives_fail_with_a_reason_and_unpack_nothing(people, case, ingest_worker, tmp_path, members,
                                                            compression, words):
    archive = _zip(tmp_path / "upload.zip", members, compression)
    slide = _ingested(people.owner.client, case["id"], archive)
    assert slide["status"] == "failed"
    assert words in slide["error"]
    folder = Path(os.environ["MEDIA_ROOT"]) / "slides" / slide["sha256"][:2] / slide["sha256"]
    assert [p.name for p in folder.iterdir()] == ["slide.zip"]
    assert not (Path(os.environ["MEDIA_ROOT"]).parent / "evil.dcm").exists()
