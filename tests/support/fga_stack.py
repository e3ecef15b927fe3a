"""OpenFGA on a migrated PostgreSQL (or the memory engine), for verify, bench and benchmarks.

Test harness (not shipped). :func:`openfga_server` starts the real binary with
the recipe's :func:`server_env` (the settings we ship) on free loopback ports,
``plain_env`` overriding or removing (value ``None``) any of them: the
benchmarks use that to run OpenFGA's own defaults beside ours, on the same
binary. :func:`migrated` migrates a database as ``openfga_migrator`` and gives
``openfga_app``'s URI, as the pipeline does.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from openfga_release.recipes.dsn import Dsn
from openfga_release.recipes.migrate import URI_ENV, clean_env, secrets_in
from openfga_release.recipes.openfga import (
    PRESHARED_KEYS_ENV,
    server_command,
    server_env,
    wait_ready,
)

from tests.support import migrate_local
from tests.support.net import free_port
from tests.support.openfga_local import LocalServer, _stop
from tests.support.pg import PgServer


def dsn(pg: PgServer, who: str, **kw: Any) -> Dsn:
    return Dsn(host=pg.host, port=pg.port, database=pg.names.database, user=pg.role(who),
               password=pg.passwords[who], **kw)


def migrated(binary: str, pg: PgServer) -> dict[str, str]:
    """Migrate ``pg`` (idempotent) and return the app role's secret env for the server."""
    migrate_local.run_local(binary, {URI_ENV: dsn(pg, "migrator").secret_uri()})
    return {URI_ENV: dsn(pg, "app").secret_uri()}


@contextmanager
def openfga_server(
    binary: str,
    key: str,
    *,
    engine: str = "postgres",
    datastore: Mapping[str, str] | None = None,
    plain_env: Mapping[str, str | None] | None = None,
    memory_mib: int | None = None,
) -> Iterator[LocalServer]:
    """``openfga run`` as we ship it (plus ``plain_env``; ``memory_mib``: the memory limit
    a deployment would give it) on 127.0.0.1; always stopped."""
    http, grpc, metrics = free_port(), free_port(), free_port()
    plain: dict[str, str | None] = dict(server_env(
        engine=engine, host="127.0.0.1", http_port=http, grpc_port=grpc, metrics_port=metrics,
        log_level="warn", memory_mib=memory_mib,
    ))
    plain.update(plain_env or {})
    secret = {**(datastore or {}), PRESHARED_KEYS_ENV: key}
    env = clean_env(os.environ, **{k: v for k, v in plain.items() if v is not None})
    env.update(secret)
    with tempfile.TemporaryDirectory(prefix="openfga-stack-") as tmp:
        log_path = Path(tmp) / "openfga.log"
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(server_command(binary), env=env, stdout=log,
                                    stderr=subprocess.STDOUT, cwd=tmp)
        server = LocalServer(f"http://127.0.0.1:{http}", proc, log_path)
        try:
            wait_ready(server.url, exited=proc.poll, logs=server.logs,
                       redacted=secrets_in(secret))
            yield server
        finally:
            _stop(proc)
