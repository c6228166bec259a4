"""``python -m inference``: analyze on every good real slide, clean one-line errors on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from inference.cli import main

ROOT = Path(__file__).resolve().parents[2]
GOOD = ["svs/CMU-1-Small-Region.svs", "svs/small.svs", "dicom/boxes/boxes_0.dcm",
        "dicom/wsi2dcm-jpeg/jpeg.dicom", "tiff/boxes.tiff", "tiff/yb10kx5k.zstd.tiff"]
BAD = ["bad/base64-text.svs", "bad/unopenable.tiff", "bad/unreadable.svs", "bad/OT-MONO2-8-colon.dcm",
       "bad/sm_annotations.dcm"]
REQUIRED_KEYS = {"text", "regions", "visual_tokens", "visual_token_budget", "tiles_encoded", "tissue_tiles",
                 "timings", "model", "polygons", "notes"}


@pytest.mark.parametrize("name", GOOD)
def test_every_good_real_slide_goes_through_analyze(
    name: str, real_slides_dir: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["analyze", str(real_slides_dir / name), "--prompt", "Describe this slide.",
                 "--model", str(tiny_model_dir), "--store", str(tmp_path), "--max-new-tokens", "4", "--json"])
    out = capsys.readouterr().out
    assert code == 0
    result = json.loads(out.strip().splitlines()[-1])
    assert REQUIRED_KEYS <= result.keys()
    assert 0 < result["visual_tokens"] <= result["visual_token_budget"]
    assert result["regions"]


@pytest.mark.parametrize("name", BAD)
def test_a_bad_slide_is_one_line_error_and_exit_2(
    name: str, real_slides_dir: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["analyze", str(real_slides_dir / name), "--prompt", "Describe.", "--model", str(tiny_model_dir),
                 "--store", str(tmp_path)])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err.startswith("error: ") and "\n" not in err


def test_bad_model_dir_and_empty_prompt_exit_2_from_a_real_process(textured_slide: Path, tmp_path: Path) -> None:
    for args in (["--prompt", "Describe.", "--model", str(tmp_path)],
                 ["--prompt", "  ", "--model", str(tmp_path)]):
        done = subprocess.run([sys.executable, "-m", "inference", "analyze", str(textured_slide), *args],
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 2
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("error: "), done.stderr


def test_analyze_streams_text_to_stdout(
    textured_slide: Path, tiny_model_dir: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["analyze", str(textured_slide), "--prompt", "Is there cancer?", "--task", "cancer_detection",
                 "--model", str(tiny_model_dir), "--store", str(tmp_path), "--max-new-tokens", "6",
                 "--roi", "0,0,2048,2048"])
    captured = capsys.readouterr()
    assert code == 0 and captured.out.strip()
    assert "not a diagnosis" in captured.err


def test_extract_reuses_the_store(textured_slide: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["extract", str(textured_slide), "--encoder", "tiny-dinov2", "--mag", "5", "--tile-size", "64",
            "--out", str(tmp_path), "--device", "cpu"]
    assert main(args) == 0
    first = json.loads(capsys.readouterr().out)
    assert main(args) == 0
    second = json.loads(capsys.readouterr().out)
    assert first["tiles_read"] == first["tiles"] > 0
    assert second["tiles_read"] == 0 and second["reused"]
    assert Path(second["path"]).is_file()


def test_unknown_encoder_is_a_clear_error(textured_slide: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["extract", str(textured_slide), "--encoder", "nope"]) == 2
    assert "unknown encoder 'nope'" in capsys.readouterr().err
    assert main(["extract", str(textured_slide), "--encoder", "tiny-dinov2", "--torch-threads", "0"]) == 2
    assert "--torch-threads must be at least 1" in capsys.readouterr().err
