"""PGFC on a large generated slide, side by side in one run:

- high-magnification tiles PGFC encodes ÷ all high-magnification tissue tiles (target ≤ 0.10);
- time to first token with PGFC (cold feature store) ÷ time to encode every high-magnification tile.

    python bench/pgfc.py                  # tiny checkpoint, CPU (or cuda when present)
    python bench/pgfc.py --config base    # CLIP ViT-B/16 + ViT-L/16 + ~1B Llama, random weights, for a GPU
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402

import slides  # noqa: E402
from inference.analysis import AnalysisRequest  # noqa: E402
from inference.backends import load_backend  # noqa: E402
from inference.extraction import encode_grid  # noqa: E402
from inference.feature_store import FeatureStore  # noqa: E402
from inference.tiny import init_checkpoint  # noqa: E402
from slides.synth import write_pyramidal_tiff  # noqa: E402
from slides.tiling import tissue_tile_grid  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=("tiny", "base"), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--slide", type=Path, default=None)
    parser.add_argument("--size", default=None, help="generated slide WxH at 0.5 µm/px "
                        "(default 12288x8192 tiny, 32768x24576 base)")
    parser.add_argument("--tokens", type=int, default=16, help="new tokens to generate")
    args = parser.parse_args()
    size = args.size or ("12288x8192" if args.config == "tiny" else "32768x24576")
    width, height = (int(v) for v in size.split("x"))
    with tempfile.TemporaryDirectory() as tmp:
        tmp_path = Path(tmp)
        started = time.perf_counter()
        slide_path = args.slide or write_pyramidal_tiff(tmp_path / "large.tiff", (width, height), mpp=0.5,
                                                        aperio=True)
        print(f"slide ready in {time.perf_counter() - started:.1f}s")
        model_dir = init_checkpoint(tmp_path / "model", args.config)
        backend = load_backend("omnipath", model_dir, device=args.device, store=FeatureStore(tmp_path / "store"))
        cfg = backend.config
        request = AnalysisRequest(slide_path, "Where is the carcinoma?", max_new_tokens=args.tokens)
        # warm-up on a small region, so both sides below start from a loaded, compiled model
        backend.analyze(AnalysisRequest(slide_path, "warm up", roi=(0, 0, 4096, 4096), max_new_tokens=2)).run()
        backend.store = FeatureStore(tmp_path / "cold-store")
        result = backend.analyze(request).run()

        with slides.open_slide(slide_path) as slide:
            fine = tissue_tile_grid(slide, cfg.fine_magnification, cfg.tile_size)
            started = time.perf_counter()
            encode_grid(slide, fine, [backend.general, backend.pathology], batch_size=backend.batch_size,
                        num_readers=backend.num_readers, cancel=threading.Event())
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            encode_all = time.perf_counter() - started
    fine_key = f"{cfg.fine_magnification:g}x"
    encoded, available = result.tiles_encoded[fine_key], result.tissue_tiles[fine_key]
    print(f"config={args.config} device={args.device} slide={width}x{height} tile={cfg.tile_size}px "
          f"budget={result.visual_token_budget} visual_tokens={result.visual_tokens}")
    print(f"{fine_key} tiles encoded by PGFC: {encoded} of {available} tissue tiles "
          f"= {encoded / available:.3f} (target <= 0.10)")
    print(f"time to first token with PGFC (cold store): {result.timings.first_token:.2f}s "
          f"(features {result.timings.features:.2f}s, prefill {result.timings.prefill:.3f}s)")
    print(f"encoding every {fine_key} tissue tile: {encode_all:.2f}s "
          f"({available / encode_all:.1f} tiles/s, each through both encoders)")
    print(f"TTFT(PGFC) / encode-all = {result.timings.first_token / encode_all:.3f}")
    print(f"generation: {result.timings.tokens_per_s:.1f} tokens/s over {result.generated_tokens} tokens")


if __name__ == "__main__":
    main()
