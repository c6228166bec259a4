"""The layer rules of DESIGN.md §1, checked on the real import graph."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def test_the_import_contracts_hold():
    result = subprocess.run(
        [str(Path(sys.executable).parent / "lint-imports"), "--no-cache"], cwd=ROOT, capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr


def test_slides_and_inference_load_without_django():
    code = (
        "import sys, slides, slides.deepzoom, slides.tissue, slides.__main__\n"
        "import importlib.util\n"
        "if importlib.util.find_spec('inference'):\n"
        "    import inference, inference.__main__\n"
        "bad = sorted(m for m in sys.modules if m.split('.')[0] in {'django', 'rest_framework', 'channels', 'webapp'})\n"
        "assert not bad, bad\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True)
    assert result.returncode == 0, result.stderr
