"""Worklist benchmark (issue 5). Run by `make bench`; never by the tests.

10,000 cases (9,000 in the clients' department); 50 concurrent clients read the default worklist (`GET /api/cases/`,
first page of 50, stat → urgent → routine, due, received) through the full HTTP stack (uvicorn, token
auth, Django, PostgreSQL). Target: list p95 ≤ 100 ms.

Printed side by side, in one run:
1. the query plan of the list query (it should walk `case_worklist_idx`, not sort 10,000 rows);
2. one client, sequential: the cost of one list request;
3. 50 clients in a closed loop (each sends its next request as soon as the last answer arrives):
   saturation; latency here is mostly queueing, reported with throughput and ÷ `GET /api/auth/me/`
   (the same stack without the worklist) at the same concurrency;
4. 50 clients each refreshing their worklist about once a second (a busy department): the p95 a
   person sees, the figure the target is about.
Client-side times are wall clock around each request; server-side ones come from `Server-Timing`.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from contextlib import ExitStack
from datetime import timedelta
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench._harness import django_env, percentile, uvicorn  # noqa: E402
from webapp.devservices import free_port  # noqa: E402

ORGANS = ["colon", "breast", "prostate", "skin", "lung", "stomach", "liver", "kidney"]


def seed(cases: int, clients: int, seed: int = 5) -> list[str]:
    """Departments, `clients` pathologists of the bench department (one token each) and the cases."""
    from django.utils import timezone
    from rest_framework.authtoken.models import Token

    from webapp.accounts.models import Department, User
    from webapp.cases.models import Case

    rng = random.Random(seed)
    department = Department.objects.create(name="Bench Histopathology", code="bench-histo")
    other = Department.objects.create(name="Bench Elsewhere", code="bench-other")
    tokens = []
    users = []
    for n in range(clients):
        user = User(username=f"bench-{n}")
        user.set_unusable_password()
        user.save()
        user.departments.add(department)
        user.set_role("pathologist")
        users.append(user)
        tokens.append(Token.objects.create(user=user).key)
    now = timezone.now()
    rows = []
    for n in range(cases):
        received = now - timedelta(minutes=rng.randrange(60 * 24 * 30))
        priority = rng.choices(["stat", "urgent", "routine"], weights=[5, 20, 75])[0]
        status = rng.choices(["received", "in_review", "signed_out"], weights=[40, 30, 30])[0]
        rows.append(
            Case(
                department=department if n % 10 else other,
                accession_number=f"B26-{n:06d}",
                patient_pseudonym=f"PT-{rng.getrandbits(32):08x}",
                organ=rng.choice(ORGANS),
                priority=priority,
                status=status,
                assignee=rng.choice(users) if status != "received" else None,
                received_at=received,
                due_at=received + timedelta(hours=rng.choice([4, 24, 72, 120])) if rng.random() < 0.7 else None,
                signed_out_at=received + timedelta(hours=rng.uniform(1, 96)) if status == "signed_out" else None,
                triage_score=rng.random() if rng.random() < 0.5 else None,
            )
        )
    Case.objects.bulk_create(rows, batch_size=2000)
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("VACUUM ANALYZE cases_case")  # the steady state autovacuum keeps
    return tokens


def list_plan(token: str) -> str:
    """EXPLAIN ANALYZE of the default list page as the API builds it for the first bench user."""
    from django.db import connection
    from rest_framework.authtoken.models import Token

    from webapp.cases.models import Case

    user = Token.objects.get(key=token).user
    page = Case.objects.visible_to(user).select_related("assignee")[:50]
    sql, params = page.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("EXPLAIN (ANALYZE, COSTS OFF, TIMING OFF) " + sql, params)
        return "\n".join("    " + row[0] for row in cursor.fetchall())


async def _one(client: httpx.AsyncClient, path: str, client_ms: list[float], server_ms: list[float]) -> None:
    started = time.perf_counter()
    response = await client.get(path)
    client_ms.append((time.perf_counter() - started) * 1000)
    if response.status_code != 200:
        raise RuntimeError(f"{path}: HTTP {response.status_code} {response.text[:200]}")
    timing = response.headers.get("server-timing", "")
    if "dur=" in timing:
        server_ms.append(float(timing.split("dur=")[1].split(",")[0]))


async def closed_loop(urls: list[str], tokens: list[str], path: str, requests_each: int):
    """Every client sends its next request as soon as the previous one is answered."""
    client_ms: list[float] = []
    server_ms: list[float] = []

    async def run(n: int) -> None:
        headers = {"Authorization": f"Token {tokens[n]}"}
        async with httpx.AsyncClient(base_url=urls[n % len(urls)], headers=headers, timeout=60) as client:
            for _ in range(requests_each):
                await _one(client, path, client_ms, server_ms)

    started = time.perf_counter()
    await asyncio.gather(*(run(n) for n in range(len(tokens))))
    return client_ms, server_ms, len(client_ms) / (time.perf_counter() - started)


async def paced(urls: list[str], tokens: list[str], path: str, seconds: float, interval: float):
    """Every client refreshes about every `interval` seconds (jittered), for `seconds`."""
    client_ms: list[float] = []
    server_ms: list[float] = []
    rng = random.Random(11)

    async def run(n: int) -> None:
        headers = {"Authorization": f"Token {tokens[n]}"}
        async with httpx.AsyncClient(base_url=urls[n % len(urls)], headers=headers, timeout=60) as client:
            await asyncio.sleep(rng.uniform(0, interval))
            deadline = time.perf_counter() + seconds
            while time.perf_counter() < deadline:
                next_at = time.perf_counter() + rng.uniform(0.5 * interval, 1.5 * interval)
                await _one(client, path, client_ms, server_ms)
                await asyncio.sleep(max(0.0, next_at - time.perf_counter()))

    await asyncio.gather(*(run(n) for n in range(len(tokens))))
    return client_ms, server_ms


def _line(label: str, client_ms: list[float], server_ms: list[float], extra: str = "") -> None:
    print(f"  {label:<44} client p50 {percentile(client_ms, 50):7.1f} ms  p95 {percentile(client_ms, 95):7.1f} ms"
          f"  | server p50 {percentile(server_ms, 50):6.1f} ms  p95 {percentile(server_ms, 95):6.1f} ms{extra}",
          flush=True)


def run_phases(urls: list[str], tokens: list[str], args) -> float:
    """Phases 2–4 against running servers; returns the paced phase's client-side list p95 (ms)."""
    asyncio.run(closed_loop(urls, tokens[:4], "/api/cases/", 10))  # warm connections and caches
    client_ms, server_ms, _ = asyncio.run(closed_loop(urls[:1], tokens[:1], "/api/cases/", 100))
    _line("1 client, sequential: GET /api/cases/", client_ms, server_ms)
    me_client, me_server, me_rate = asyncio.run(closed_loop(urls, tokens, "/api/auth/me/", args.requests))
    list_client, list_server, list_rate = asyncio.run(closed_loop(urls, tokens, "/api/cases/", args.requests))
    _line(f"{len(tokens)} clients, closed loop: GET /api/auth/me/", me_client, me_server, f"  {me_rate:5.0f} req/s")
    _line(f"{len(tokens)} clients, closed loop: GET /api/cases/", list_client, list_server,
          f"  {list_rate:5.0f} req/s")
    print(f"  ratio list ÷ auth/me at {len(tokens)} concurrent: client p95 "
          f"{percentile(list_client, 95) / percentile(me_client, 95):.2f}, "
          f"mean {statistics.mean(list_client) / statistics.mean(me_client):.2f}")
    paced_client, paced_server = asyncio.run(paced(urls, tokens, "/api/cases/", args.seconds, args.interval))
    _line(f"{len(tokens)} clients, ~1 refresh/s each: GET /api/cases/", paced_client, paced_server,
          f"  ({len(paced_client)} requests)")
    return percentile(paced_client, 95)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", type=int, default=10_000)
    parser.add_argument("--clients", type=int, default=50)
    parser.add_argument("--requests", type=int, default=20, help="per client, closed loop")
    parser.add_argument("--servers", type=int, default=2, help="uvicorn processes (clients spread over them)")
    parser.add_argument("--seconds", type=float, default=20, help="paced phase duration")
    parser.add_argument("--interval", type=float, default=1.0, help="paced phase: seconds between refreshes")
    args = parser.parse_args()

    # The shipped settings use a psycopg connection pool per process (webapp/settings.py); the pool
    # size is the knob worth comparing under 50 clients.
    configurations = {
        "pool max 8 (default)": {},
        "pool max 16": {"DATABASE_POOL_MAX": "16"},
    }
    with django_env("pathdesk_bench_worklist") as env:
        tokens = seed(args.cases, args.clients)
        print(f"\n== bench/worklist.py — {args.cases} cases (9 in 10 in the clients' department), "
              f"{args.clients} clients, {args.servers} uvicorn process(es) ==")
        print("  list query plan (first page, default order):")
        print(list_plan(tokens[0]))
        verdicts = {}
        for name, overrides in configurations.items():
            print(f"\n  -- {name} --")
            with ExitStack() as servers:
                urls = [servers.enter_context(uvicorn({**env, **overrides}, free_port())) for _ in range(args.servers)]
                verdicts[name] = run_phases(urls, tokens, args)
        for name, p95 in verdicts.items():
            verdict = "meets" if p95 <= 100 else "misses"
            print(f"  target list p95 ≤ 100 ms, {args.clients} clients refreshing ~1/s, {name}: "
                  f"{p95:.1f} ms — {verdict} it")
    return 0


if __name__ == "__main__":
    sys.exit(main())
