"""Ask OmniPath about a slide from a script and watch the answer stream (no Django needed: httpx + websockets).

    python webapp/analysis/client.py --url http://127.0.0.1:8000 --token KEY --slide 1 \\
        --task cancer_detection "Is there invasive carcinoma?"

    python webapp/analysis/client.py --url … --token … --watch 42     # watch an existing job

Get a token with `POST /api/auth/token/` (username + password). The text is printed as it arrives; a
`restart` (the job's worker died and another one runs it again) starts the text over. On a reconnect the
script asks for the messages after the last one it printed (`?after=<seq>`), so nothing is missed or repeated.
Exit status: 0 succeeded, 1 failed or cancelled, 2 refused request.
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import httpx
from websockets.exceptions import ConnectionClosedError, ConnectionClosedOK
from websockets.sync.client import connect


def ask(api: httpx.Client, slide: int, task: str, prompt: str) -> dict:
    response = api.post("/api/analyses/", json={"slide": slide, "task": task, "prompt": prompt})
    if response.status_code != 201:
        sys.exit(f"refused ({response.status_code}): {response.json().get('error', response.text)}")
    job = response.json()
    if job.get("notice"):
        print(f"[{job['notice']}]", file=sys.stderr)
    return job


def watch(base_url: str, token: str, job_id: int, out=sys.stdout) -> dict:
    """Print the job's text as it streams; return the final `done` or `error` message."""
    ws_url = base_url.replace("http://", "ws://").replace("https://", "wss://") + f"/ws/analyses/{job_id}/"
    last_seq = 0
    while True:
        try:
            with connect(f"{ws_url}?after={last_seq}", additional_headers={"Authorization": f"Token {token}"},
                         origin=base_url) as ws:
                for raw in ws:
                    message = json.loads(raw)
                    if message.get("seq"):
                        last_seq = message["seq"]
                    kind = message["type"]
                    if kind == "token":
                        out.write(message["text"])
                        out.flush()
                    elif kind == "restart":
                        out.write("\n[the job is running again on another worker; the text starts over]\n")
                    elif kind == "status" and message["status"] in ("queued", "running"):
                        print(f"[{message['status']}: {message['phase']} {message['progress']:.0%}]", file=sys.stderr)
                    elif kind in ("done", "error"):
                        out.write("\n")
                        return message
        except ConnectionClosedOK as closed:
            sys.exit(f"the server closed the stream ({closed.rcvd.code if closed.rcvd else '?'})")
        except (ConnectionClosedError, OSError) as exc:
            print(f"[connection lost ({exc}); reconnecting after message {last_seq}]", file=sys.stderr)
            time.sleep(1)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("prompt", nargs="?")
    parser.add_argument("--url", default="http://127.0.0.1:8000")
    parser.add_argument("--token", required=True, help="API token (POST /api/auth/token/)")
    parser.add_argument("--slide", type=int)
    parser.add_argument("--task", default="question")
    parser.add_argument("--watch", type=int, metavar="JOB", help="watch an existing job instead of asking")
    args = parser.parse_args(argv)
    if args.watch is None and (args.slide is None or not args.prompt):
        parser.error("give --slide and a prompt, or --watch JOB")
    with httpx.Client(base_url=args.url, headers={"Authorization": f"Token {args.token}"}, timeout=30) as api:
        job_id = args.watch if args.watch is not None else ask(api, args.slide, args.task, args.prompt)["id"]
        final = watch(args.url, args.token, job_id)
    if final["type"] == "error":
        print(f"failed: {final['error']}", file=sys.stderr)
        return 1
    return 0 if final["status"] == "succeeded" else 1


if __name__ == "__main__":
    sys.exit(main())
