"""Run the real ``openfga run`` on loopback exactly as the pipeline configures it.

Test harness (not shipped): the environment comes from
:func:`openfga_release.recipes.openfga.server_env` and readiness from its
:func:`wait_ready`, so what the tests start is what the service runs.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from openfga_release.recipes.migrate import clean_env, secrets_in
from openfga_release.recipes.openfga import (
    NOT_SERVING_GRACE,
    READY_TIMEOUT,
    server_command,
    server_env,
    wait_ready,
)

from tests.support.net import free_port


@dataclass
class LocalServer:
    """A running ``openfga run`` on 127.0.0.1 (the tests' stand-in for the service)."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    def logs(self) -> str:
        return self.log_path.read_text(errors="replace")


@contextmanager
def run_local(
    binary: str,
    secret_env: Mapping[str, str],
    *,
    engine: str = "postgres",
    ready_timeout: float = READY_TIMEOUT,
    not_serving_grace: float = NOT_SERVING_GRACE,
    wait: bool = True,
) -> Iterator[LocalServer]:
    """Start the binary with :func:`server_env` on free loopback ports; always stop it."""
    http, grpc, metrics = free_port(), free_port(), free_port()
    plain = server_env(
        engine=engine, host="127.0.0.1", http_port=http, grpc_port=grpc, metrics_port=metrics
    )
    env = clean_env(os.environ, **plain)
    env.update(secret_env)
    with tempfile.TemporaryDirectory(prefix="openfga-run-") as tmp:
        log_path = Path(tmp) / "openfga.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                server_command(binary), env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp
            )
        server = LocalServer(f"http://127.0.0.1:{http}", proc, log_path)
        try:
            if wait:
                wait_ready(
                    server.url, timeout=ready_timeout, exited=proc.poll, logs=server.logs,
                    not_serving_grace=not_serving_grace, redacted=secrets_in(secret_env),
                )
            yield server
        finally:
            _stop(proc)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            # Still retrying its database, OpenFGA handles SIGTERM only afterwards: kill it.
            proc.wait(timeout=3)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
