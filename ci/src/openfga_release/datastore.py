"""Dagger wiring for ``openfga migrate``: point the OpenFGA image at a datastore,
run migrate and its verification pass, explain a failure.

One implementation serves the ``migrate`` function and test-e2e. The rules
(which arguments, which roles, the URI checks, the run-twice logic and its
timeout) live in ``recipes/migrate.py`` and ``recipes/dsn.py``.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from typing import Annotated

import dagger
from dagger import Doc, dag

from .recipes import migrate as recipe
from .recipes.dsn import PGX_ENV, Dsn, check_password, check_uri_as_given
from .recipes.image import CA_BUNDLE_PATH
from .recipes.postgres import POSTGRES_IMAGE, Names

PROBE_CA_BUNDLE = "/probe/ca-certificates.crt"  # the OpenFGA image's CA bundle, for libpq


# The arguments of the main object's `migrate`, declared once.
Uri = Annotated[dagger.Secret | None, Doc("full postgres:// URI, as a secret (env://VAR)")]
Host = Annotated[str, Doc("database host, instead of --datastore-uri")]
Port = Annotated[int, Doc("database port")]
User = Annotated[str, Doc("the role to migrate as (default: the migrator role)")]
Password = Annotated[dagger.Secret | None, Doc("the role's password (with --host)")]
SslMode = Annotated[str, Doc("require or stricter for public hosts")]
SchemaRevision = Annotated[int | None, Doc("migrate to this schema revision (default: the newest)")]
Timeout = Annotated[int, Doc("seconds for the whole run")]
AllowDowngrade = Annotated[
    bool, Doc("allow a --schema-revision below the current one (OpenFGA's Down steps drop data)")
]


@dataclass(frozen=True)
class _Target:
    """The datastore as the checks left it: what to hand a container, and what to redact."""

    dsn: Dsn  # the first host pgx tries, its user and params (password: only for redaction)
    uri: dagger.Secret | None  # the user's URI, unchanged (URI mode)
    public_uri: str  # host mode: the URI without a password
    password: dagger.Secret | None  # host mode
    redact: list[str] = field(repr=False)  # plaintext: never in a repr or a log


async def _target(
    names: Names,
    datastore_uri: dagger.Secret | None,
    host: str,
    port: int,
    user: str,
    password: dagger.Secret | None,
    sslmode: str,
) -> _Target:
    recipe.check_datastore_args(
        datastore_uri is not None, host, password is not None,
        user=user, port=port, sslmode=sslmode,
    )  # fmt: skip
    if datastore_uri is not None:
        uri = await datastore_uri.plaintext()
        dsn = check_uri_as_given(uri)
        recipe.check_migrator_user(dsn.user, names)
        redact = [uri] + ([dsn.password] if dsn.password else [])
        return _Target(dsn, datastore_uri, "", None, redact)
    assert password is not None  # check_datastore_args
    role = recipe.check_migrator_user(user or names.migrator, names)
    dsn = Dsn(host, names.database, role, port=port, sslmode=sslmode)
    plain = await password.plaintext()  # read once, locally, only to check its length
    check_password(plain, "--password")
    return _Target(dsn, None, dsn.public_uri(), password, [plain])


def _apply(ctr: dagger.Container, target: _Target) -> dagger.Container:
    # OpenFGA's own flags and every PG* variable pgx would read beside the URI.
    for name in (*recipe.UNSAFE_ENV, *PGX_ENV):
        ctr = ctr.without_env_variable(name)
    if target.uri is not None:
        return ctr.with_secret_variable(recipe.URI_ENV, target.uri)
    assert target.password is not None
    ctr = ctr.with_env_variable(recipe.URI_ENV, target.public_uri)
    return ctr.with_secret_variable(recipe.PASSWORD_ENV, target.password)


def probe(image: dagger.Container, target: _Target) -> dagger.Container:
    """psql from the pinned postgres image, reading goose_db_version as the migrator (read-only).

    Same connection data as migrate: the URI secret unchanged, or the public URI
    with PGPASSWORD from the password secret; the files the URI names (CA, client
    certificate) and the CA bundle OpenFGA trusts come from the OpenFGA image.
    """
    ctr = dag.container().from_(POSTGRES_IMAGE)
    for name in recipe.PROBE_UNSAFE_ENV:
        ctr = ctr.without_env_variable(name)
    ctr = ctr.with_new_file(recipe.PROBE_SCRIPT_PATH, recipe.PROBE_SCRIPT)
    ctr = ctr.with_file(PROBE_CA_BUNDLE, image.file(CA_BUNDLE_PATH))
    for path, mode in recipe.probe_files(target.dsn).items():
        ctr = ctr.with_file(path, image.file(path), permissions=mode)
    for name, value in recipe.probe_env(target.dsn, ca_bundle=PROBE_CA_BUNDLE).items():
        ctr = ctr.with_env_variable(name, value)
    if target.uri is not None:
        ctr = ctr.with_secret_variable(recipe.PROBE_URI_ENV, target.uri)
    else:
        assert target.password is not None
        ctr = ctr.with_env_variable(recipe.PROBE_URI_ENV, target.public_uri)
        ctr = ctr.with_secret_variable("PGPASSWORD", target.password)
    # A fresh run id: the engine must read the database now, not answer from its cache.
    ctr = ctr.with_env_variable(recipe.RUN_ID_ENV, uuid.uuid4().hex)
    return ctr.with_exec(recipe.probe_command(), expect=dagger.ReturnType.ANY)


async def current_revision(image: dagger.Container, target: _Target) -> int:
    ran = probe(image, target)
    code = await ran.exit_code()
    out, err = await ran.stdout(), await ran.stderr()
    try:
        return recipe.check_probe(code, out, err, target.redact)
    except recipe.MigrateError as failure:
        raise recipe.MigrateError(
            f"{failure}\n--- psql said (redacted) ---\n{failure.detail}", failure.detail
        ) from None


async def run_migrate(
    image: Callable[[], Awaitable[dagger.Container]],
    *,
    names: Names,
    datastore_uri: dagger.Secret | None = None,
    host: str = "",
    port: int = 5432,
    user: str = "",
    password: dagger.Secret | None = None,
    sslmode: str = "",
    target: int | None = None,
    timeout: float = recipe.RUN_TIMEOUT,
    allow_downgrade: bool = False,
) -> recipe.MigrateReport:
    """The ``migrate`` function: checks, the downgrade guard (only with a target), migrate.

    ``image`` makes the OpenFGA image (it may ask the engine for its platform):
    it is called only once every argument has been checked. With a target
    revision, a read-only probe reads the current revision first; a target below
    it is refused unless ``allow_downgrade`` (the Down steps drop data), and when
    allowed the report names what they dropped.
    """
    recipe.check_target(target)
    recipe.check_timeout(timeout)
    where = await _target(names, datastore_uri, host, port, user, password, sslmode)
    ctr = await image()
    downgraded: tuple[str, ...] = ()
    if target is not None:
        current = await current_revision(ctr, where)
        downgraded = recipe.check_downgrade(current, target, allow_downgrade)
    report = await migrate(_apply(ctr, where), target, timeout, where.redact)
    return replace(report, downgraded=downgraded)


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
