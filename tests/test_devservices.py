"""webapp/devservices.py, which wraps `make test` and `make demo`: a SIGTERM (a CI timeout, `kill`) stops the
command and the throwaway servers it started, like Ctrl-C, instead of orphaning them."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time

from tests.conftest import ROOT
from webapp.devservices import port_open


def test_sigterm_stops_the_command_and_the_throwaway_redis(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "REDIS_URL"}
    marker, ready = tmp_path / "stopped", tmp_path / "ready"
    # The command records the signal it gets; it must be SIGTERM, passed on.
    command = [sys.executable, "-c",
               "import signal, sys, time, pathlib\n"
               f"def bye(s, f): pathlib.Path({str(marker)!r}).write_text(str(s)); sys.exit(0)\n"
               "signal.signal(signal.SIGTERM, bye)\n"
               f"pathlib.Path({str(ready)!r}).touch()\n"
               "time.sleep(120)\n"]
    process = subprocess.Popen([sys.executable, "webapp/devservices.py", "--redis-always", "--", *command],
                               cwd=ROOT, env=env, stderr=subprocess.PIPE, text=True)
    try:
        line = ""
        while "REDIS_URL=" not in line:
            line = process.stderr.readline()
            assert line, "devservices ended before starting its command"
        host, port = re.search(r"REDIS_URL=redis://([\d.]+):(\d+)/", line).groups()
        deadline = time.monotonic() + 10
        while not port_open(host, int(port)) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert port_open(host, int(port))
        while not ready.exists() and time.monotonic() < deadline + 20:  # the command's handler is in place
            time.sleep(0.05)
        assert ready.exists()
        process.send_signal(signal.SIGTERM)
        assert process.wait(30) == 0
        assert marker.read_text() == str(int(signal.SIGTERM))
        assert not port_open(host, int(port)), "the throwaway Redis outlived devservices"
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
