"""Run ``openfga migrate`` locally exactly as the ``migrate`` function does.

Test harness (not shipped): the argv, the env and the run-then-verify pass
(:func:`openfga_release.recipes.migrate.run_and_verify`, with its one timeout
sentence) come from the recipe; only "run one process" is local.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

import anyio
from openfga_release.recipes.migrate import (
    CONNECT_TIMEOUT,
    RUN_TIMEOUT,
    MigrateLog,
    MigrateReport,
    check_result,
    clean_env,
    migrate_command,
    run_and_verify,
    secrets_in,
)


def run_local(
    binary: str,
    datastore_env: Mapping[str, str],
    version: int | None = None,
    *,
    connect_timeout: int = CONNECT_TIMEOUT,
    timeout: float = RUN_TIMEOUT,
    base_env: Mapping[str, str] | None = None,
) -> MigrateReport:
    """Run migrate (run + no-op pass) with a local binary.

    ``datastore_env`` holds :data:`URI_ENV` (and maybe :data:`PASSWORD_ENV`).
    """
    argv = migrate_command(version, binary=binary, connect_timeout=connect_timeout)
    env = clean_env(os.environ if base_env is None else base_env, **datastore_env)
    secrets = secrets_in(datastore_env)

    async def run_once(argv: list[str]) -> MigrateLog:
        # Cancelled by the shared timeout: anyio kills the process.
        proc = await anyio.run_process(argv, env=env, check=False)
        out, err = proc.stdout.decode(errors="replace"), proc.stderr.decode(errors="replace")
        return check_result(proc.returncode, out, err, secrets)

    return anyio.run(run_and_verify, run_once, argv, timeout)
