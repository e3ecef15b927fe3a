"""The body of the test-e2e check: ephemeral PostgreSQL -> migrate as the migrator
role -> OpenFGA as the app role -> smoke test, PostgreSQL stopped at the end.

Fixed choices (names, the verify-full TLS policy) are in ``recipes/e2e.py``.
"""

from __future__ import annotations

import secrets

import dagger
from dagger import dag

from . import datastore, openfga
from . import postgres as pg_wiring
from .recipes import e2e as recipe
from .recipes import openfga as server
from .recipes.postgres import Names
from .standalone import smoke


def _passwords(run: str) -> dict[str, dagger.Secret]:
    return {
        role: dag.set_secret(f"e2e-{run}-{role}-password", secrets.token_urlsafe(24))
        for role in recipe.PASSWORD_ROLES
    }


async def run(postgres: pg_wiring.Postgres, image: dagger.Container) -> str:
    """Run the whole check; ``image`` is the OpenFGA image under test (engine's arch)."""
    names = postgres.names()
    run_id = secrets.token_hex(8)
    passwords = _passwords(run_id)
    # One throwaway CA per run: the server's certificate and what OpenFGA verifies it with.
    tls = pg_wiring.ephemeral_tls(base=postgres.base, run_id=run_id)
    # Started here and stopped at the end: a service that is only bound is
    # detached soon after the exec that bound it, and would come back empty
    # (a fresh volume, no schema) for the server and the smoke test.
    database = await pg_wiring.postgres_service(
        postgres.config, passwords["migrator"], passwords["app"], passwords["readonly"],
        test_tls=tls, memory=postgres.memory, max_connections=postgres.max_connections,
        base=postgres.base, names=names,
    ).start()  # fmt: skip
    try:
        ctr = image.with_file(recipe.POSTGRES_CA, tls.file("ca.crt"))
        bound = ctr.with_service_binding(recipe.POSTGRES_ALIAS, database)
        return await _check(bound, passwords, names)
    finally:
        await database.stop()


async def _check(
    openfga_ctr: dagger.Container, passwords: dict[str, dagger.Secret], names: Names
) -> str:
    migrator = openfga_ctr.with_env_variable(
        server.URI_ENV, recipe.datastore_uri(names.migrator, names)
    ).with_secret_variable(server.PASSWORD_ENV, passwords["migrator"])
    schema = await datastore.migrate(migrator, None)

    key = dag.set_secret(f"e2e-preshared-key-{secrets.token_hex(8)}", server.new_preshared_key())
    svc = openfga.service(
        openfga_ctr, recipe.datastore_uri(names.app, names), passwords["app"], key,
        marker=f"schema-revision-{schema.revision}",
    )  # fmt: skip
    out = await (
        openfga.smoke_runner(key)
        .with_service_binding(openfga.ALIAS, svc)
        .with_exec(smoke.smoke_command(f"http://{openfga.ALIAS}:{server.HTTP_PORT}", token=True))
        .stdout()
    )
    return f"{schema.summary()}\n{out}"
