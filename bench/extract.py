"""Overlap efficiency of feature extraction: end-to-end ÷ min(reader-only, encoder-only), one run, one slide.

    python bench/extract.py                       # tiny encoder, CPU (or cuda when present)
    python bench/extract.py --config base         # ViT-L/16 (UNI layout, random weights), for a GPU
    python bench/extract.py --config base --max-tiles 48 --batch-size 8 --rounds 2   # the same on a CPU, minutes

Target ≥ 0.9: the encoder should never wait on JPEG decoding. Prints tiles/s for each mode and the ratio.
With ``--rounds R`` the three modes are measured R times, interleaved, and each mode's median is used (a
noisy shared CPU moves single runs by ±30%). ``--torch-threads`` sets torch's intra-op threads (default:
torch's own choice, all cores), e.g. to leave a core to the reader threads on a small CPU.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch  # noqa: E402
from transformers import Dinov2Config  # noqa: E402

import slides  # noqa: E402
from inference.encoders import IMAGENET_MEAN, IMAGENET_STD, PatchEncoder, compute_dtype, load_encoder  # noqa: E402
from inference.extraction import encode_grid, read_batches  # noqa: E402
from inference.modeling_omnipath import build_vision_encoder  # noqa: E402
from slides.synth import write_pyramidal_tiff  # noqa: E402
from slides.tiling import tissue_tile_grid  # noqa: E402


def make_encoder(config: str, device: str) -> PatchEncoder:
    if config == "tiny":
        return load_encoder("tiny-dinov2", device=device, dtype=compute_dtype(device))
    vit_l = Dinov2Config(hidden_size=1024, num_hidden_layers=24, num_attention_heads=16, mlp_ratio=4,
                         image_size=224, patch_size=16, layerscale_value=1e-5)
    return PatchEncoder(build_vision_encoder(vit_l), "vit-l16-random", 224, IMAGENET_MEAN, IMAGENET_STD,
                        device, compute_dtype(device))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=("tiny", "base"), default="tiny")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--slide", type=Path, default=None, help="default: a generated 8192×6144 slide")
    parser.add_argument("--mag", type=float, default=20.0)
    parser.add_argument("--tile-size", type=int, default=None, help="default 64 (tiny) / 224 (base)")
    parser.add_argument("--batch-size", type=int, default=None, help="default 32 (tiny) / 128 (base)")
    parser.add_argument("--readers", type=int, default=None, help="default: CPU cores")
    parser.add_argument("--max-tiles", type=int, default=2000)
    parser.add_argument("--rounds", type=int, default=1, help="measure each mode this many times; medians")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch intra-op threads (default: torch's)")
    args = parser.parse_args()
    if args.rounds < 1:
        parser.error("--rounds must be >= 1")
    if args.torch_threads is not None:
        torch.set_num_threads(args.torch_threads)
    tile = args.tile_size or (64 if args.config == "tiny" else 224)
    batch = args.batch_size or (32 if args.config == "tiny" else 128)
    readers = args.readers or max(1, (os.cpu_count() or 2))
    with tempfile.TemporaryDirectory() as tmp:
        path = args.slide or write_pyramidal_tiff(Path(tmp) / "bench.tiff", (8192, 6144), mpp=0.5, aperio=True)
        encoder = make_encoder(args.config, args.device)
        with slides.open_slide(path) as slide:
            grid = tissue_tile_grid(slide, args.mag, tile)
            grid = grid.subset(slice(0, args.max_tiles))
            n = len(grid)
            # warm-up (lazy init, cudnn autotune, OpenSlide caches are per-tile, not warmed by this)
            encoder.encode(torch.zeros(batch, tile, tile, 3, dtype=torch.uint8))

            reader, encoder_only, e2e = [], [], []
            for _ in range(args.rounds):
                started = time.perf_counter()
                batches, threads, n_batches = read_batches(slide, grid, batch, tile, readers)
                sample = []
                for _ in range(n_batches):
                    _, pixels = batches.get()
                    if len(sample) < 4:
                        sample.append(pixels)
                reader.append(n / (time.perf_counter() - started))

                started = time.perf_counter()
                done = 0
                while done < n:
                    for pixels in sample:
                        encoder.encode(pixels)
                        done += pixels.shape[0]
                if args.device.startswith("cuda"):
                    torch.cuda.synchronize()
                encoder_only.append(done / (time.perf_counter() - started))

                started = time.perf_counter()
                encode_grid(slide, grid, [encoder], batch_size=batch, num_readers=readers, cancel=threading.Event())
                e2e.append(n / (time.perf_counter() - started))
    reader_tps, encoder_tps, e2e_tps = (statistics.median(v) for v in (reader, encoder_only, e2e))
    ratio = e2e_tps / min(reader_tps, encoder_tps)
    print(f"config={args.config} device={args.device} tiles={n} tile={tile}px batch={batch} readers={readers} "
          f"torch_threads={torch.get_num_threads()} rounds={args.rounds}")
    if args.rounds > 1:
        for name, values in (("reader-only", reader), ("encoder-only", encoder_only), ("end-to-end", e2e)):
            print(f"  {name:13} rounds: {', '.join(f'{v:.2f}' for v in values)} tiles/s")
    print(f"reader-only   {reader_tps:9.2f} tiles/s")
    print(f"encoder-only  {encoder_tps:9.2f} tiles/s (patches/s)")
    print(f"end-to-end    {e2e_tps:9.2f} tiles/s")
    print(f"overlap efficiency = end-to-end / min(reader, encoder) = {ratio:.2f} (target >= 0.9)")


if __name__ == "__main__":
    main()
