"""Streaming benchmark (issue 4). Run by `make bench`; never by the tests.

The whole path of an answer: a real `celery worker -Q gpu` process runs the tiny OmniPath checkpoint on
the CPU → Redis (replay log + channel layer) → uvicorn → websocket clients in this process. Printed side
by side, in one run:

1. tokens/s through the whole path ÷ tokens/s of bare in-process generation (same model, slide, prompt
   and token count; the two alternate, median of the ratios). Target ≥ 0.95.
2. added per-token latency: the worker stamps each piece when the model yields it (`at`, wall clock),
   the client notes when the message arrives; p50/p99 with 1 stream and with 25 concurrent streams.
   Target p99 ≤ 20 ms at 25. On this CPU box 25 concurrent generations (one worker process, 25 threads
   sharing the model) saturate the cores, so (2b) is also measured with 25 synthetic producers that use the
   worker's real sender (`JobStream`) at a GPU-like rate, which loads the streaming path without the model.
3. dispatch overhead: POST /api/analyses/ → the worker starts the job (`started_at`), p50.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import OUT, ROOT, django_env, ingest_now, make_user_and_case, percentile, uvicorn  # noqa: E402
from webapp.devservices import free_port  # noqa: E402

PROMPT = "Is there invasive carcinoma?"


@contextmanager
def gpu_worker(env: dict[str, str], name: str, pool: str = "prefork", concurrency: int = 1):
    log = OUT / f"celery-{name}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "webapp", "worker", "-Q", "gpu", "-c", str(concurrency), "--pool",
             pool, "-n", f"{name}@%h", "--without-gossip", "--without-mingle", "-l", "INFO"],
            cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 180
    # prefork preloads the model in its pool process; the threads pool loads it with the first job.
    ready = "loaded omnipath:" if pool == "prefork" else " ready."
    while ready not in log.read_text(errors="replace"):
        if process.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"gpu worker did not start: {log.read_text()[-3000:]}")
        time.sleep(0.2)
    try:
        yield
    finally:
        process.terminate()
        try:
            process.wait(20)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, 9)
            process.wait()


async def watch(url: str, token: str, job_id: int) -> list[tuple[float, dict]]:
    from websockets.asyncio.client import connect

    received = []
    async with connect(f"{url.replace('http', 'ws')}/ws/analyses/{job_id}/", origin=url,
                       additional_headers={"Authorization": f"Token {token}"}, open_timeout=60) as ws:
        async for raw in ws:
            message = json.loads(raw)
            received.append((time.time(), message))
            if message["type"] in ("done", "error"):
                break
    return received


def token_rate(times: list[float], tokens: int) -> float:
    return (tokens - 1) / (times[-1] - times[0]) if len(times) > 1 and times[-1] > times[0] else float("nan")


def latencies_ms(received: list[tuple[float, dict]]) -> list[float]:
    return [(at - m["at"]) * 1000 for at, m in received if m["type"] == "token"]


def job_row(job_id: int):
    from webapp.analysis.models import AnalysisJob

    return AnalysisJob.objects.get(pk=job_id)


async def path_run(url: str, token: str, slide_id: int, tokens: int) -> tuple[float, list[float], int]:
    """One job through the whole path: (tokens/s at the client, per-token latencies ms, job id)."""
    async with httpx.AsyncClient(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=60) as api:
        job = (await api.post("/api/analyses/", json={"slide": slide_id, "task": "question", "prompt": PROMPT,
                                                      "max_new_tokens": tokens})).json()
    received = await asyncio.wait_for(watch(url, token, job["id"]), 600)
    assert received[-1][1]["type"] == "done", received[-1]
    token_times = [at for at, m in received if m["type"] == "token"]
    generated = (await asyncio.to_thread(job_row, job["id"])).result["generated_tokens"]
    return token_rate(token_times, generated), latencies_ms(received), job["id"]


def bare_run(backend, slide_path: Path, sha: str, tokens: int) -> float:
    from inference.analysis import AnalysisRequest

    stream = backend.analyze(AnalysisRequest(slide_path, PROMPT, "question", max_new_tokens=tokens, slide_sha256=sha))
    times = []
    for _ in stream:
        times.append(time.time())
    return token_rate(times, stream.result.generated_tokens)


async def concurrent_path(url: str, token: str, slide_id: int, streams: int, tokens: int) -> tuple[list[float], float]:
    results = await asyncio.gather(*(path_run(url, token, slide_id, tokens) for _ in range(streams)))
    lat = [v for _, values, _ in results for v in values]
    return lat, statistics.median(rate for rate, _, _ in results)


def dispatch_overhead(url: str, token: str, slide_id: int, jobs: int) -> list[float]:
    out = []
    with httpx.Client(base_url=url, headers={"Authorization": f"Token {token}"}, timeout=60) as api:
        for _ in range(jobs):
            sent = time.time()
            job = api.post("/api/analyses/", json={"slide": slide_id, "task": "question", "prompt": PROMPT,
                                                   "max_new_tokens": 1}).json()
            while api.get(f"/api/analyses/{job['id']}/").json()["status"] in ("queued", "running"):
                time.sleep(0.05)
            out.append((job_row(job["id"]).started_at.timestamp() - sent) * 1000)
    return out


# -- synthetic producers: the worker's real sender, without the model ---------------------------------------

def produce(job_ids: list[int], rate: float, tokens: int) -> None:
    """Child process: stream `tokens` pieces per job at `rate` per second through JobStream, all jobs at once.

    One thread emits every stream's pieces on schedule (the model's side costs nothing here, as on a GPU);
    each stream's JobStream sends them from the process's sender loop, as in a worker. The streams start
    staggered over one token interval, as independent jobs would.
    """
    import gc
    import heapq
    import logging

    # The core layer logs every message it drops for a full channel (consumers refill gaps from the log).
    logging.getLogger("channels_redis").setLevel(logging.WARNING)
    from webapp.analysis import streaming
    from webapp.analysis.models import AnalysisJob

    names = {job.pk: job.stream_name for job in AnalysisJob.objects.filter(pk__in=job_ids)}
    outs = {}
    for job_id in job_ids:
        owner = f"bench/{job_id}"
        assert streaming.acquire_lease(job_id, owner)
        outs[job_id] = streaming.JobStream(job_id, names[job_id], owner)
    # As a worker does when a job starts: a status message first (this also opens the sender's connections,
    # which a long-running worker has open already). Only token messages are timed.
    for out in outs.values():
        out.send({"type": "status", "status": "running", "phase": "generating", "progress": 0.0})
    for out in outs.values():
        out.close()
    gc.freeze()  # as the worker does once its model is loaded (webapp/analysis/runner.py)
    start = time.monotonic() + 0.5
    due = [(start + i / (rate * len(job_ids)), 0, job_id) for i, job_id in enumerate(job_ids)]
    heapq.heapify(due)
    while due:
        when, index, job_id = heapq.heappop(due)
        delay = when - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        outs[job_id].token(" tok")
        if index + 1 < tokens:
            heapq.heappush(due, (when + 1 / rate, index + 1, job_id))
    for out in outs.values():
        out.send({"type": "done", "status": "succeeded", "text": "", "regions": [], "model": "synthetic",
                  "demo_weights": True})
    for job_id, out in outs.items():
        out.close()
        streaming.release_lease(job_id, f"bench/{job_id}")


async def synthetic(url: str, token: str, env: dict, job_ids: list[int], rate: float, tokens: int,
                    raw: Path) -> list[float]:
    """Latencies (ms) of every token message; the raw arrivals go to `raw` (JSON) for a closer look."""
    # The client's own full collections would be counted as stream latency: keep them off what it loaded.
    gc.freeze()
    watchers = [asyncio.create_task(watch(url, token, job_id)) for job_id in job_ids]
    await asyncio.sleep(2)  # every client connected and in its group
    producer = await asyncio.create_subprocess_exec(
        sys.executable, __file__, "--produce", ",".join(map(str, job_ids)), "--rate", str(rate), "--tokens",
        str(tokens), cwd=ROOT, env=env)
    if await producer.wait() != 0:
        for watcher in watchers:
            watcher.cancel()
        raise RuntimeError(f"the synthetic producer failed (exit {producer.returncode})")
    received = await asyncio.wait_for(asyncio.gather(*watchers), 120)
    raw.write_text(json.dumps([[(at, m.get("at"), m["type"], len(m.get("text") or "")) for at, m in r]
                               for r in received]))
    return [v for r in received for v in latencies_ms(r)]


def fmt(values: list[float]) -> str:
    return f"p50 {percentile(values, 50):6.1f} ms   p99 {percentile(values, 99):6.1f} ms   (n={len(values)})"


def model_parts(args, env: dict, url: str, token: str, slide, model: Path, slide_file: Path) -> None:
    """Parts 1, 2a, 3 (one prefork GPU-queue worker) and 2b (one worker with a thread per stream)."""
    from django.conf import settings

    from inference.backends import load_backend

    backend = load_backend("omnipath", model, device="cpu")
    print(f"tiny OmniPath on CPU ({os.cpu_count()} cores), {args.tokens} tokens per job, "
          f"ANALYSIS_STREAM_FLUSH_MS={settings.ANALYSIS_STREAM_FLUSH_MS}, CHANNEL_LAYER={settings.CHANNEL_LAYER}")
    with gpu_worker(env, "bench-gpu"):
        asyncio.run(path_run(url, token, slide.pk, 8))  # warm: features cached, first job's costs paid
        bare_run(backend, slide_file, slide.sha256, 8)
        ratios, bare_rates, path_rates, lat1 = [], [], [], []
        for _ in range(args.repeats):
            bare = bare_run(backend, slide_file, slide.sha256, args.tokens)
            rate, lat, _ = asyncio.run(path_run(url, token, slide.pk, args.tokens))
            bare_rates.append(bare), path_rates.append(rate), ratios.append(rate / bare)
            lat1 += lat
        print(f"1. tokens/s: whole path {statistics.median(path_rates):.1f}, bare in-process "
              f"{statistics.median(bare_rates):.1f} → ratio {statistics.median(ratios):.3f} "
              f"(runs: {', '.join(f'{r:.3f}' for r in ratios)}; target ≥ 0.95)")
        print(f"2a. added per-token latency, 1 stream:          {fmt(lat1)}")
        dispatch = dispatch_overhead(url, token, slide.pk, 10)
        print(f"3. dispatch overhead POST → worker starts:     p50 {statistics.median(dispatch):6.1f} ms "
              f"(min {min(dispatch):.1f}, max {max(dispatch):.1f}, n={len(dispatch)})")
    del backend
    if args.skip_concurrent:
        return
    # 25 jobs at once in one process: each holds a database connection while it runs.
    threads_env = {**env, "DATABASE_POOL_MAX": str(args.streams + 5)}
    with gpu_worker(threads_env, "bench-gpu-threads", pool="threads", concurrency=args.streams):
        asyncio.run(path_run(url, token, slide.pk, 8))
        lat25, rate25 = asyncio.run(concurrent_path(url, token, slide.pk, args.streams, args.tokens // 2))
        print(f"2b. added per-token latency, {args.streams} streams (model): {fmt(lat25)}   "
              f"[{rate25:.1f} tokens/s per stream: the CPU is saturated by the model]")


def synthetic_parts(args, env: dict, token: str, slide) -> None:
    """2c, side by side: the same synthetic load through each channel layer (a web server of its own each)."""
    from webapp.analysis.models import AnalysisJob

    for layer in ("core", "pubsub"):
        layer_env = {**env, "CHANNEL_LAYER": layer}
        held = [AnalysisJob.objects.create(slide=slide, case=slide.case, task="question", prompt=PROMPT,
                                           backend="synthetic").pk for _ in range(args.streams)]
        with uvicorn(layer_env, free_port()) as url:
            lat = asyncio.run(synthetic(url, token, layer_env, held, args.rate, args.tokens,
                                        OUT / f"stream-{layer}.json"))
        print(f"2c. added per-token latency, {args.streams} streams × {args.rate:g} tokens/s (JobStream, no model), "
              f"CHANNEL_LAYER={layer + ':':7} {fmt(lat)}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200, help="tokens per job")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--streams", type=int, default=25)
    parser.add_argument("--rate", type=float, default=40.0, help="synthetic tokens/s per stream")
    parser.add_argument("--flush-ms", type=int, default=None,
                        help="ANALYSIS_STREAM_FLUSH_MS for the workers (default: the setting's default)")
    parser.add_argument("--skip-concurrent", action="store_true", help="only parts 1, 2a and 3")
    parser.add_argument("--synthetic-only", action="store_true", help="only part 2c (no model)")
    parser.add_argument("--produce", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.produce:
        import django

        django.setup()
        produce([int(v) for v in args.produce.split(",")], args.rate, args.tokens)
        return 0

    from slides.synth import write_pyramidal_tiff

    work = Path(tempfile.mkdtemp(prefix="pathdesk-bench-stream-"))
    model = work / "omnipath-tiny"
    subprocess.run([sys.executable, "-m", "inference", "init-tiny", str(model)], cwd=ROOT, check=True,
                   capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    slide_file = write_pyramidal_tiff(work / "bench.tiff", (2048, 1536), mpp=0.5, aperio=True)
    extra = {"OMNIPATH_MODEL": str(model), "PATHDESK_FEATURE_STORE": str(work / "features"), "HF_HUB_OFFLINE": "1",
             "ANALYSIS_THROTTLE_RATE": "100000/min", "TOKENIZERS_PARALLELISM": "false"}
    if args.flush_ms is not None:
        extra["ANALYSIS_STREAM_FLUSH_MS"] = str(args.flush_ms)
    with django_env("pathdesk_bench_stream", **extra) as env:
        token, case = make_user_and_case()
        slide = ingest_now(case, slide_file)
        if not args.synthetic_only:
            with uvicorn(env, free_port()) as url:
                model_parts(args, env, url, token, slide, model, slide_file)
        if not args.skip_concurrent:
            synthetic_parts(args, env, token, slide)
    return 0


if __name__ == "__main__":
    sys.exit(main())
