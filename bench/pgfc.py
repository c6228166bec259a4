"""PGFC on a large generated slide, side by side in one run:

- high-magnification tiles PGFC encodes ÷ all high-magnification tissue tiles (target ≤ 0.10);
- time to first token with PGFC (cold feature store) ÷ time to encode every high-magnification tile;
- the same question again: fine tiles taken from the fine-tile cache, and its time to first token.

    python bench/pgfc.py                  # tiny checkpoint, CPU (or cuda when present)
    python bench/pgfc.py --config base    # CLIP ViT-B/16 + ViT-L/16 + ~1B Llama, random weights, for a GPU
    python bench/pgfc.py --config base --size 16384x12288 --warmup-roi 3584,896,896,896 --encode-all-max 64  # CPU

On a CPU the base encoders manage about one tile per second, so encoding every fine tile of a slide takes
hours: ``--encode-all-max N`` times N evenly spread fine tiles and scales that time to all of them (the
encoders run batch after batch, so the time is linear in tiles; the printout says it is an estimate).
``--warmup-roi x,y,w,h`` sets the warm-up region (level-0 px; it must hold tissue): on a CPU, one coarse tile,
since the warm-up's own PGFC re-read of up to ``pgfc_top_k`` regions takes minutes there.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
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
    parser.add_argument("--warmup-roi", default="0,0,4096,4096", help="warm-up region x,y,w,h in level-0 px")
    parser.add_argument("--encode-all-max", type=int, default=None,
                        help="time at most this many fine tiles and scale to all (default: encode them all)")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
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
        roi = tuple(float(v) for v in args.warmup_roi.split(","))
        backend.analyze(AnalysisRequest(slide_path, "warm up", roi=roi, max_new_tokens=2)).run()
        backend.store = FeatureStore(tmp_path / "cold-store")  # and with it a cold fine-tile cache
        result = backend.analyze(request).run()
        again = backend.analyze(request).run()

        with slides.open_slide(slide_path) as slide:
            fine = tissue_tile_grid(slide, cfg.fine_magnification, cfg.tile_size)
            timed = fine
            if args.encode_all_max is not None and args.encode_all_max < len(fine):
                timed = fine.subset(np.linspace(0, len(fine) - 1, args.encode_all_max).round().astype(np.int64))
            started = time.perf_counter()
            encode_grid(slide, timed, [backend.general, backend.pathology], batch_size=backend.batch_size,
                        num_readers=backend.num_readers, cancel=threading.Event())
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            encode_all = (time.perf_counter() - started) * len(fine) / len(timed)
    fine_key = f"{cfg.fine_magnification:g}x"
    encoded, available = result.tiles_encoded[fine_key], result.tissue_tiles[fine_key]
    estimated = "" if len(timed) == len(fine) else f", estimated from {len(timed)} timed tiles"
    print(f"config={args.config} device={args.device} slide={width}x{height} tile={cfg.tile_size}px "
          f"budget={result.visual_token_budget} visual_tokens={result.visual_tokens}")
    print(f"{fine_key} tiles encoded by PGFC: {encoded} of {available} tissue tiles "
          f"= {encoded / available:.3f} (target <= 0.10)")
    print(f"time to first token with PGFC (cold store): {result.timings.first_token:.2f}s "
          f"(features {result.timings.features:.2f}s, prefill {result.timings.prefill:.3f}s)")
    print(f"encoding every {fine_key} tissue tile: {encode_all:.2f}s "
          f"({available / encode_all:.2f} tiles/s, each through both encoders{estimated})")
    print(f"TTFT(PGFC) / encode-all = {result.timings.first_token / encode_all:.3f}")
    print(f"generation: {result.timings.tokens_per_s:.1f} tokens/s over {result.generated_tokens} tokens")
    same = [r.l0_box for r in again.regions] == [r.l0_box for r in result.regions] and again.text == result.text
    print(f"same question again: {again.tiles_encoded[fine_key]} {fine_key} tiles encoded, "
          f"{again.tiles_cached[fine_key]} from the fine-tile cache; TTFT {again.timings.first_token:.2f}s "
          f"(fine features {again.timings.fine_features:.3f}s vs {result.timings.fine_features:.2f}s cold) "
          f"= {again.timings.first_token / result.timings.first_token:.3f} of the cold TTFT; "
          f"same regions and text: {same}")


if __name__ == "__main__":
    main()
