"""Dagger wiring for PostgreSQL: the image, the Unikraft rootfs, the test service.

Everything here only builds lazy pipelines (no awaits); the knowledge lives in
:mod:`openfga_release.recipes.postgres` and ``images/postgres``. Bad plain arguments
(memory, names, base image, host names) raise ``PostgresConfigError`` while the
plan is built, before any container starts. Passwords and TLS keys travel only
as ``dagger.Secret`` through ``with_mounted_secret``: never as plain arguments,
environment values, image layers or rendered files; the start script checks the
passwords inside the container before anything is created.

``config`` is the repository's ``images/postgres`` directory, passed as a
Directory argument (``DefaultPath("/images/postgres")`` in main.py): the same
files the tests run and a plain-PostgreSQL user copies.
"""

from __future__ import annotations

from typing import Annotated

import dagger
from dagger import Doc, dag, function

from .recipes import postgres as pg
from .sdk import object_type

SECRETS_DIR = "/run/secrets/openfga"
EPHEMERAL_TLS_OUT = "/tls"
EPHEMERAL_TLS_WORK = "/tmp/openfga-ca"  # the CA key stays here, never exported
DEFAULT_HOSTNAMES = ("postgres", "localhost", "127.0.0.1")


def postgres_image(
    config: dagger.Directory,
    *,
    memory: str = f"{pg.DEFAULT_MEMORY_MIB}MiB",
    max_connections: int = pg.DEFAULT_MAX_CONNECTIONS,
    base: str = pg.POSTGRES_IMAGE,
    names: pg.Names = pg.Names(),  # noqa: B008 (frozen, validated once at import)
    platform: dagger.Platform | None = None,
) -> dagger.Container:
    """The pinned official image with the config, init scripts and start script."""
    memory_conf = pg.render_memory_conf(memory, max_connections)
    ctr = (
        dag.container(platform=platform)
        .from_(pg.check_image_pinned(base))
        # (host modes; a config the postgres user cannot read fails the build's
        # config check below, as that user)
        .with_directory(pg.CONFIG_DIR, config, include=list(pg.CONFIG_FILES))
        # Rendered, not copied: --memory decides it (images/postgres/memory.conf
        # is the same renderer's 1 GiB output, for plain PostgreSQL).
        .with_new_file(f"{pg.CONFIG_DIR}/memory.conf", memory_conf, permissions=0o644)
        .with_file(pg.ENTRYPOINT, config.file(pg.START_SCRIPT), permissions=0o755)
    )
    # File by file with an explicit mode: the host checkout's modes must not
    # decide whether the official runner sources 00-openfga-env.sh or runs it
    # in a child shell (losing its exports).
    for name in pg.INIT_FILES:
        ctr = ctr.with_file(
            f"{pg.INITDB_DIR}/{name}",
            config.file(f"initdb.d/{name}"),
            permissions=pg.INIT_FILE_MODE,
        )
    ctr = (
        ctr.with_exec(pg.prune_args())
        .with_exec(["mkdir", "-p", pg.VOLUME])
        .with_exec(pg.config_check_args(pg.CONFIG_DIR))
        .with_entrypoint([pg.ENTRYPOINT])
        .with_default_args([])
        .with_exposed_port(pg.PORT, description="PostgreSQL (TLS only for network logins)")
        .with_label("org.opencontainers.image.title", "openfga-postgres")
        .with_label(
            "org.opencontainers.image.description",
            "PostgreSQL for OpenFGA: hardened config, roles, TLS",
        )
        .with_label("org.opencontainers.image.base.name", base)
    )
    for name, value in {**pg.IMAGE_ENV, **names.env()}.items():
        ctr = ctr.with_env_variable(name, value)
    return ctr


def postgres_rootfs(
    config: dagger.Directory,
    *,
    memory: str = f"{pg.DEFAULT_MEMORY_MIB}MiB",
    max_connections: int = pg.DEFAULT_MAX_CONNECTIONS,
    base: str = pg.POSTGRES_IMAGE,
) -> dagger.Directory:
    """The image's filesystem for Unikraft base-compat (kraftfiles/postgres/Kraftfile
    points at it once exported to kraftfiles/postgres/rootfs)."""
    image = postgres_image(config, memory=memory, max_connections=max_connections, base=base)
    return image.rootfs()


def ephemeral_tls(
    hostnames: list[str] | tuple[str, ...] = DEFAULT_HOSTNAMES,
    *,
    base: str = pg.POSTGRES_IMAGE,
    run_id: str = "",
    days: int = pg.TEST_CA_DAYS,
) -> dagger.Directory:
    """A throwaway CA and a server certificate for ``hostnames``: ca.crt,
    server.crt, server.key. For tests only (the key lives in the Dagger cache);
    the image's openssl runs the same commands the tests run locally. A
    ``run_id`` gives that run its own keys (not the cached ones of an earlier run)."""
    commands = pg.tls_commands(EPHEMERAL_TLS_OUT, EPHEMERAL_TLS_WORK, list(hostnames), days)
    ctr = dag.container().from_(pg.check_image_pinned(base))
    if run_id:
        ctr = ctr.with_env_variable("TLS_RUN_ID", run_id)
    for cmd in commands:
        ctr = ctr.with_exec(cmd)
    return ctr.directory(EPHEMERAL_TLS_OUT)


def postgres_service(
    config: dagger.Directory,
    migrator_password: dagger.Secret,
    app_password: dagger.Secret,
    readonly_password: dagger.Secret,
    *,
    tls_cert: dagger.File | None = None,
    tls_key: dagger.Secret | None = None,
    test_tls: dagger.Directory | None = None,
    hostnames: list[str] | tuple[str, ...] = DEFAULT_HOSTNAMES,
    memory: str = f"{pg.DEFAULT_MEMORY_MIB}MiB",
    max_connections: int = pg.DEFAULT_MAX_CONNECTIONS,
    base: str = pg.POSTGRES_IMAGE,
    names: pg.Names = pg.Names(),  # noqa: B008 (frozen, validated once at import)
) -> dagger.Service:
    """An ephemeral PostgreSQL (fresh volume each run) with the same config and init,
    listening on 5432 with TLS: the given certificate and key, or, with neither,
    a certificate from :func:`ephemeral_tls` for ``hostnames`` (bind the service
    under one of them, e.g. ``with_service_binding("postgres", svc)``; clients
    verify with ``ephemeral_tls(hostnames).file("ca.crt")``). ``test_tls`` hands in
    that directory, so a caller verifies against the very CA the server uses."""
    if (tls_cert is None) != (tls_key is None):
        raise pg.PostgresConfigError(
            "give both --tls-cert and --tls-key, or neither for an ephemeral test CA"
        )
    ctr = postgres_image(
        config,
        memory=memory,
        max_connections=max_connections,
        base=base,
        names=names,
    )
    crt, key = f"{pg.TLS_DIR}/{pg.SERVER_CERT}", f"{pg.TLS_DIR}/{pg.SERVER_KEY}"
    if tls_cert is None or tls_key is None:
        tls = test_tls if test_tls is not None else ephemeral_tls(hostnames, base=base)
        ctr = ctr.with_file(crt, tls.file(pg.SERVER_CERT), permissions=0o644).with_file(
            key, tls.file(pg.SERVER_KEY), permissions=0o600
        )
    else:
        ctr = ctr.with_file(crt, tls_cert, permissions=0o644).with_mounted_secret(
            key, tls_key, owner="postgres", mode=0o600
        )
    secrets = {"migrator": migrator_password, "app": app_password, "readonly": readonly_password}
    for kind, secret in secrets.items():
        path = f"{SECRETS_DIR}/{kind}"
        # mode only applies with an owner (SDK docs). Root reads them: the start
        # script, before it switches to postgres; the server never can.
        ctr = ctr.with_mounted_secret(
            path, secret, owner=pg.SECRET_FILE_OWNER, mode=pg.SECRET_FILE_MODE
        ).with_env_variable(pg.PASSWORD_ENV[kind] + "_FILE", path)
    return ctr.as_service(use_entrypoint=True)


@object_type
class Postgres:
    """PostgreSQL for OpenFGA: hardened config, four least-privilege roles, TLS, SCRAM.

    The context (config files, sizing, base image, names) is given once, to the
    ``postgres`` getter; every function here uses it.
    """

    config: dagger.Directory
    memory: str = f"{pg.DEFAULT_MEMORY_MIB}MiB"
    max_connections: int = pg.DEFAULT_MAX_CONNECTIONS
    base: str = pg.POSTGRES_IMAGE
    database: str = pg.DEFAULT_DATABASE
    owner_role: str = pg.DEFAULT_ROLES["owner"]
    migrator_role: str = pg.DEFAULT_ROLES["migrator"]
    app_role: str = pg.DEFAULT_ROLES["app"]
    readonly_role: str = pg.DEFAULT_ROLES["readonly"]

    def names(self) -> pg.Names:
        return pg.Names(
            database=self.database, owner=self.owner_role, migrator=self.migrator_role,
            app=self.app_role, readonly=self.readonly_role,
        )  # fmt: skip

    @function
    def image(
        self, platform: Annotated[dagger.Platform | None, Doc("e.g. linux/arm64")] = None
    ) -> dagger.Container:
        """The pinned official image with the config, init scripts and start script."""
        return postgres_image(
            self.config, memory=self.memory, max_connections=self.max_connections,
            base=self.base, names=self.names(), platform=platform,
        )  # fmt: skip

    @function
    def rootfs(self) -> dagger.Directory:
        """The Unikraft base-compat root filesystem (export to kraftfiles/postgres/rootfs)."""
        return postgres_rootfs(
            self.config, memory=self.memory, max_connections=self.max_connections, base=self.base
        )

    @function
    def service(
        self,
        migrator_password: Annotated[dagger.Secret, Doc("the migrator role's password")],
        app_password: Annotated[dagger.Secret, Doc("the app role's password")],
        readonly_password: Annotated[dagger.Secret, Doc("the read-only role's password")],
        tls_cert: Annotated[dagger.File | None, Doc("server certificate (PEM)")] = None,
        tls_key: Annotated[dagger.Secret | None, Doc("server key (PEM), as a secret")] = None,
    ) -> dagger.Service:
        """An ephemeral PostgreSQL (fresh volume) with the same config and init, TLS on 5432.

        Without --tls-cert/--tls-key it uses a throwaway CA (see test-tls)."""
        return postgres_service(
            self.config, migrator_password, app_password, readonly_password,
            tls_cert=tls_cert, tls_key=tls_key, memory=self.memory,
            max_connections=self.max_connections, base=self.base, names=self.names(),
        )  # fmt: skip

    @function
    def test_tls(
        self,
        hostnames: Annotated[tuple[str, ...], Doc("names the certificate is for")] = (
            DEFAULT_HOSTNAMES
        ),
    ) -> dagger.Directory:
        """A throwaway CA and server certificate (ca.crt, server.crt, server.key): tests only."""
        return ephemeral_tls(list(hostnames), base=self.base)
