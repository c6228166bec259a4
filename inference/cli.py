"""``python -m inference …``: init-tiny, convert-timm, extract, analyze.

Errors a person can fix (bad slide, bad model directory, empty prompt) print one line
``error: <reason>`` on stderr and exit with status 2.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Sequence
from pathlib import Path

from inference.errors import InferenceError


def _roi(text: str) -> tuple[float, float, float, float]:
    parts = text.split(",")
    if len(parts) != 4:
        raise argparse.ArgumentTypeError("expected x,y,w,h in level-0 pixels")
    try:
        x, y, w, h = (float(p) for p in parts)
    except ValueError as exc:
        raise argparse.ArgumentTypeError("expected four numbers x,y,w,h") from exc
    return x, y, w, h


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m inference", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)

    p = sub.add_parser("init-tiny", help="write a tiny random checkpoint (OmniPath, or LLaVA with --kind llava)")
    p.add_argument("out_dir", type=Path)
    p.add_argument("--kind", choices=("omnipath", "llava"), default="omnipath")
    p.add_argument("--seed", type=int, default=0)

    p = sub.add_parser("convert-timm", help="convert a timm ViT checkpoint to a Dinov2Model/ViTModel directory")
    p.add_argument("checkpoint", type=Path)
    p.add_argument("out_dir", type=Path)
    p.add_argument("--target", choices=("dinov2", "vit"), default=None)
    p.add_argument("--num-heads", type=int, default=None, help="attention heads (default: hidden size / 64)")

    p = sub.add_parser("extract", help="extract (or reuse) tile features of a slide")
    p.add_argument("slide", type=Path)
    p.add_argument("--encoder", required=True, help="registered encoder name (see inference.encoders.ENCODERS)")
    p.add_argument("--weights", type=Path, default=None, help="encoder weights directory")
    p.add_argument("--mag", type=float, default=20.0, help="magnification (×), 20 ≈ 0.5 µm/px")
    p.add_argument("--tile-size", type=int, default=224)
    p.add_argument("--stride", type=int, default=None)
    p.add_argument("--min-tissue", type=float, default=0.25)
    p.add_argument("--out", type=Path, default=None, help="feature store folder")
    p.add_argument("--device", default=None, help="cuda or cpu (default: cuda when present)")
    p.add_argument("--batch-size", type=int, default=32)
    p.add_argument("--readers", type=int, default=2)
    p.add_argument("--torch-threads", type=int, default=None,
                   help="torch intra-op threads (default on CPU: the cores the reader threads leave, at least 1; "
                        "OMP_NUM_THREADS wins when set)")

    p = sub.add_parser("analyze", help="ask a model about a slide; the answer streams to stdout")
    p.add_argument("slide", type=Path)
    p.add_argument("--prompt", required=True)
    p.add_argument("--task", default="question")
    p.add_argument("--model", type=Path, default=None, help="model directory (default: $OMNIPATH_MODEL)")
    p.add_argument("--backend", choices=("omnipath", "hf-vlm"), default="omnipath")
    p.add_argument("--selector", type=Path, default=None, help="hf-vlm: OmniPath checkpoint for PGFC crops")
    p.add_argument("--roi", type=_roi, default=None, help="x,y,w,h in level-0 pixels")
    p.add_argument("--max-new-tokens", type=int, default=None)
    p.add_argument("--store", type=Path, default=None, help="feature store folder")
    p.add_argument("--device", default=None)
    p.add_argument("--json", action="store_true", help="print one JSON object with the result at the end")
    return parser


def _quiet_transformers() -> None:
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()


def cmd_init_tiny(args: argparse.Namespace) -> int:
    from inference.tiny import init_tiny, init_tiny_llava

    out = (init_tiny if args.kind == "omnipath" else init_tiny_llava)(args.out_dir, seed=args.seed)
    print(f"wrote tiny {args.kind} checkpoint to {out}")
    return 0


def cmd_convert_timm(args: argparse.Namespace) -> int:
    from inference.convert_timm import convert_timm_checkpoint

    out = convert_timm_checkpoint(args.checkpoint, args.out_dir, target=args.target, num_heads=args.num_heads)
    print(f"wrote converted encoder to {out}")
    return 0


def cmd_extract(args: argparse.Namespace) -> int:
    import torch

    from inference.encoders import default_device

    if not args.slide.is_file():
        raise InferenceError(f"slide {args.slide} does not exist")
    device = args.device or default_device()
    if args.readers < 1:
        raise InferenceError("--readers must be at least 1")
    threads = args.torch_threads
    if threads is None and device == "cpu" and not os.environ.get("OMP_NUM_THREADS"):
        # Readers decode JPEG on the same cores: an encoder using every core fights them for it
        # (bench/extract.py: overlap 0.46 with 2 torch threads + 2 readers on 2 cores, 1.05 with 1 + 1).
        threads = max(1, (os.cpu_count() or 1) - args.readers)
    if threads is not None and threads < 1:
        raise InferenceError("--torch-threads must be at least 1")
    before = torch.get_num_threads()
    try:
        if threads is not None:
            torch.set_num_threads(threads)
        return _extract(args, device)
    finally:
        torch.set_num_threads(before)  # main() may be called in-process (tests, notebooks)


def _extract(args: argparse.Namespace, device: str) -> int:
    from tqdm import tqdm

    from inference.encoders import compute_dtype, load_encoder
    from inference.extraction import extract_features
    from inference.feature_store import FeatureStore

    encoder = load_encoder(args.encoder, args.weights, device=device, dtype=compute_dtype(device))
    with tqdm(total=0, unit="tile", desc=f"{args.encoder} {args.mag:g}x", file=sys.stderr) as bar:
        def progress(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)

        result = extract_features(args.slide, [encoder], args.mag, tile_size=args.tile_size, stride=args.stride,
                                  min_tissue=args.min_tissue, store=FeatureStore(args.out),
                                  batch_size=args.batch_size, num_readers=args.readers, progress=progress)
    summary = {
        "slide_sha256": result.slide_sha256, "encoder": encoder.cache_id, "tiles": len(result.grid),
        "tiles_read": result.tiles_read, "reused": bool(result.reused), "seconds": round(result.seconds, 3),
        "path": str(result.paths[encoder.cache_id]), "grid": result.grid.describe(),
        "feature_dim": int(result.features[encoder.cache_id].shape[1]),
    }
    print(json.dumps(summary))
    return 0


def cmd_analyze(args: argparse.Namespace) -> int:
    from inference.analysis import AnalysisRequest
    from inference.backends import load_backend
    from inference.feature_store import FeatureStore

    if not args.prompt.strip():
        raise InferenceError("the prompt is empty; ask a question about the slide")
    model_dir = args.model or (Path(os.environ["OMNIPATH_MODEL"]) if os.environ.get("OMNIPATH_MODEL") else None)
    if model_dir is None:
        raise InferenceError("no model: pass --model DIR or set OMNIPATH_MODEL "
                             "(create a tiny one with `python -m inference init-tiny DIR`)")
    if not args.slide.is_file():
        raise InferenceError(f"slide {args.slide} does not exist")
    backend = load_backend(args.backend, model_dir, device=args.device, store=FeatureStore(args.store),
                           selector_dir=args.selector)
    request = AnalysisRequest(args.slide, args.prompt, task=args.task, roi=args.roi,
                              max_new_tokens=args.max_new_tokens)
    stream = backend.analyze(request)
    for piece in stream:
        sys.stdout.write(piece)
        sys.stdout.flush()
    result = stream.result
    if args.json:
        sys.stdout.write("\n" + json.dumps(result.to_dict()) + "\n")
    else:
        sys.stdout.write("\n")
        for note in result.notes:
            print(f"note: {note}", file=sys.stderr)
    return 0


COMMANDS = {"init-tiny": cmd_init_tiny, "convert-timm": cmd_convert_timm, "extract": cmd_extract,
            "analyze": cmd_analyze}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    _quiet_transformers()
    from slides import SlideError

    try:
        return COMMANDS[args.command](args)
    except (InferenceError, SlideError) as exc:
        print(f"error: {' '.join(str(exc).split())}", file=sys.stderr)
        return 2
