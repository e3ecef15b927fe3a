"""benchmarks/bench_defaults.py's CPU accounting, which its "answers per server CPU-second"
rests on: a process's own CPU, plus (for PostgreSQL's postmaster) every child it started,
whether still running or already exited and reaped."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "benchmarks"))

import bench_defaults

BURN = "import time\nt = time.process_time()\nwhile time.process_time() - t < {s}: pass\n"
PARENT = f"""
import subprocess, sys, time
{BURN.format(s=0.3)}
subprocess.run([sys.executable, "-c", {BURN.format(s=0.4)!r}])  # exits: reaped, cutime
live = subprocess.Popen([sys.executable, "-c", {BURN.format(s=0.5)!r} + "time.sleep(60)"])
print("ready", flush=True)
time.sleep(60)
"""


def test_server_cpu_counts_the_process_and_every_child_live_or_reaped() -> None:
    server = subprocess.Popen([sys.executable, "-c", BURN.format(s=0.2) + "time.sleep(60)"])
    postmaster = subprocess.Popen([sys.executable, "-c", PARENT], stdout=subprocess.PIPE,
                                  text=True, start_new_session=True)
    try:
        assert postmaster.stdout is not None and postmaster.stdout.readline() == "ready\n"
        stack = bench_defaults.Stack("http://unused", server.pid, postmaster.pid)
        deadline = time.monotonic() + 30
        while stack.cpu_seconds() < 1.3 and time.monotonic() < deadline:  # 0.2+0.3+0.4+0.5
            time.sleep(0.1)
        total = stack.cpu_seconds()
        assert 1.3 <= total < 3.0, total
        alone = bench_defaults.Stack("http://unused", server.pid, None).cpu_seconds()
        assert 0.2 <= alone < 0.6, alone  # the memory engine: OpenFGA's process only
    finally:
        server.kill()
        os.killpg(postmaster.pid, signal.SIGKILL)  # with its live child
        server.wait()
        postmaster.wait()
