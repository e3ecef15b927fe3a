"""Run ``openfga migrate`` locally exactly as the ``migrate`` function does.

Test harness (not shipped): the argv, env and the run-then-verify pass come from
:mod:`openfga_release.recipes.migrate`.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Mapping

from openfga_release.recipes.migrate import (
    CONNECT_TIMEOUT,
    RUN_TIMEOUT,
    MigrateError,
    MigrateLog,
    MigrateReport,
    check_result,
    clean_env,
    migrate_command,
    report,
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
    """Run migrate as the ``migrate`` function does (run + no-op pass), with a local binary.

    ``datastore_env`` holds :data:`URI_ENV` (and maybe :data:`PASSWORD_ENV`).
    """
    argv = migrate_command(version, binary=binary, connect_timeout=connect_timeout)
    env = clean_env(os.environ if base_env is None else base_env, **datastore_env)
    secrets = secrets_in(datastore_env)
    first = _run_once(argv, env, timeout, secrets)
    return report(first, _run_once(argv, env, timeout, secrets))


def _run_once(
    argv: list[str], env: dict[str, str], timeout: float, secrets: list[str]
) -> MigrateLog:
    try:
        proc = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise MigrateError(
            f"openfga migrate did not finish within {timeout:g}s: a lock held by another "
            "session (or a hung connection) blocks it; check pg_stat_activity and run again"
        ) from None
    return check_result(proc.returncode, proc.stdout, proc.stderr, secrets)
