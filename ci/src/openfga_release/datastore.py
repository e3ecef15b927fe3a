"""Dagger wiring for ``openfga migrate``: point the OpenFGA image at a datastore,
run migrate and its verification pass, explain a failure.

One implementation serves the ``migrate`` function and test-e2e. The rules
(which arguments, which roles, the URI checks, the run-twice logic and its
timeout) live in ``recipes/migrate.py`` and ``recipes/dsn.py``.
"""

from __future__ import annotations

import uuid

import dagger

from .recipes import migrate as recipe
from .recipes.dsn import Dsn, check_uri_as_given
from .recipes.postgres import Names


async def connect(
    ctr: dagger.Container,
    *,
    names: Names,
    datastore_uri: dagger.Secret | None = None,
    host: str = "",
    port: int = 5432,
    user: str = "",
    password: dagger.Secret | None = None,
    sslmode: str = "",
) -> tuple[dagger.Container, list[str]]:
    """``ctr`` pointed at the datastore, and the values to redact from its output.

    Every check runs here, before any connection. A full URI stays a secret (read
    once, locally, only to check it: OpenFGA gets it unchanged); with a host, the
    URI holds no password and OpenFGA takes it from OPENFGA_DATASTORE_PASSWORD, so
    it never needs percent-encoding.
    """
    recipe.check_datastore_args(datastore_uri is not None, host, password is not None)
    for name in recipe.UNSAFE_ENV:
        ctr = ctr.without_env_variable(name)
    if datastore_uri is not None:
        uri = await datastore_uri.plaintext()
        dsn = check_uri_as_given(uri)
        recipe.check_migrator_user(dsn.user, names)
        redact = [uri] + ([dsn.password] if dsn.password else [])
        return ctr.with_secret_variable(recipe.URI_ENV, datastore_uri), redact
    assert password is not None  # check_datastore_args
    role = recipe.check_migrator_user(user or names.migrator, names)
    dsn = Dsn(host, names.database, role, port=port, sslmode=sslmode)
    ctr = ctr.with_env_variable(recipe.URI_ENV, dsn.public_uri())
    return ctr.with_secret_variable(recipe.PASSWORD_ENV, password), []


async def migrate(
    ctr: dagger.Container,
    target: int | None,
    timeout: float = recipe.RUN_TIMEOUT,
    redact: list[str] | None = None,
) -> recipe.MigrateReport:
    """Migrate to ``target`` (None: the newest) and verify; bounded by ``timeout``."""
    hidden = redact or []

    async def run_once(argv: list[str]) -> recipe.MigrateLog:
        # A fresh run id: the engine must run migrate, not answer from its exec cache.
        ran = ctr.with_env_variable(recipe.RUN_ID_ENV, uuid.uuid4().hex).with_exec(
            argv, expect=dagger.ReturnType.ANY
        )
        code = await ran.exit_code()
        out, err = await ran.stdout(), await ran.stderr()
        try:
            return recipe.check_result(code, out, err, hidden)
        except recipe.MigrateError as failure:
            # Dagger shows only the message: carry the (redacted) output in it.
            raise recipe.MigrateError(
                f"{failure}\n--- openfga migrate said (redacted) ---\n{failure.detail}",
                failure.detail,
            ) from None

    return await recipe.run_and_verify(run_once, recipe.migrate_command(target), timeout)
