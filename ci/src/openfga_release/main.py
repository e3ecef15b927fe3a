"""Build, test, publish and deploy OpenFGA on PostgreSQL.

The Dagger layer: each function wires containers together from the plain
modules beside it (recipe, ELF check, image layout...), which hold the
knowledge and are what the tests run for real. Every function only builds a
lazy pipeline; nothing talks to the engine until the caller asks for a result.

Repository files reach the pipeline as Directory arguments with a DefaultPath
(uploaded at call time): ``images/`` and ``kraftfiles/`` go into containers.
"""

from __future__ import annotations

import re
import secrets
import uuid
from importlib import resources
from typing import Annotated

import anyio
import dagger
from dagger import DefaultPath, Doc, check, dag, function, object_type

from . import postgres as pg_pipeline
from .recipes import image
from .recipes import migrate as migrations
from .recipes import openfga as openfga_server
from .recipes import postgres as pg
from .recipes.dsn import Dsn, check_uri_as_given
from .recipes.gobuild import BuildInputError, BuildRecipe
from .recipes.releases import DEFAULT_VERSION, GO_IMAGE, release, to_epoch
from .standalone import smoke

# Runs elfcheck.py on every binary before it is returned or packaged, and smoke.py.
PYTHON_IMAGE = "python:3.13-slim-bookworm"
SMOKE_REQUIREMENTS = ["httpx==0.28.1"]  # smoke.py needs only httpx beside the stdlib
POSTGRES_ALIAS = "postgres"  # how the e2e check's OpenFGA reaches its database
POSTGRES_CA = "/etc/ssl/postgres/ca.crt"  # the e2e check verifies the server against it
OPENFGA_ALIAS = "openfga"
GOMODCACHE = "/go/pkg/mod"
GOCACHE = "/root/.cache/go-build"
_IMAGE_REF = re.compile(r"^[\w./-]+(:[\w.-]+)?(@sha256:[0-9a-f]{64})?$")
# MAJOR.MINOR.PATCH: a Go tag like 1.26 moves with every patch release and, with
# GOTOOLCHAIN=local, would change the bytes of the same build.
_VERSION_TAG = re.compile(r"^\d+\.\d+\.\d+([-.][\w.-]+)?$")  # 1.26.8, 1.26.8-bookworm


def _check_pinned(ref: str) -> str:
    """An image reference must name a MAJOR.MINOR.PATCH tag or a digest: not 'latest', '1.26'."""
    name, _, tag = ref.partition("@")[0].rpartition(":")
    pinned = "@sha256:" in ref or (name and _VERSION_TAG.match(tag))
    if not _IMAGE_REF.match(ref) or not pinned:
        raise BuildInputError(
            f"image {ref!r} is not pinned: name a version tag or a digest "
            f"(for example {GO_IMAGE!r}) so the same inputs give the same bytes"
        )
    return ref


async def engine_arch() -> str:
    """The engine's own architecture, so migrate and the e2e check run natively."""
    platform = str(await dag.default_platform())  # e.g. linux/arm64/v8
    return platform.split("/")[1]


def _cache_key(ref: str) -> str:
    return re.sub(r"[^A-Za-z0-9.-]+", "-", ref)


# Arguments several functions share, declared once so their docs cannot drift apart.
BuildVersion = Annotated[
    str, Doc("OpenFGA release tag (default: the pinned one); a label with --source")
]
Version = Annotated[str, Doc("OpenFGA release tag (default: the pinned one)")]
EngineArch = Annotated[str, Doc("amd64 or arm64 (default: the engine's own platform)")]
Source = Annotated[
    dagger.Directory | None, Doc("an OpenFGA checkout or fork to build instead of a release")
]
Arch = Annotated[str, Doc("target architecture: amd64 or arm64")]
Commit = Annotated[str | None, Doc("commit stamped into the binary (default: the release's)")]
Date = Annotated[str | None, Doc("date stamped into the binary and labels (default: the tag's)")]
GoImage = Annotated[str, Doc("pinned Go toolchain image")]
Overlay = Annotated[
    dagger.Directory | None,
    Doc("files copied over the OpenFGA image root"),
    DefaultPath("/images/openfga/rootfs"),
]
PostgresConfig = Annotated[
    dagger.Directory, Doc("the images/postgres directory"), DefaultPath("/images/postgres")
]
Memory = Annotated[str, Doc("memory the PostgreSQL config is sized for, e.g. 1GiB")]
MaxConnections = Annotated[int, Doc("PostgreSQL max_connections")]
PostgresBase = Annotated[str, Doc("pinned official postgres image")]


@object_type
class OpenfgaRelease:
    """Release system for OpenFGA on PostgreSQL: build, PostgreSQL, migrate, end-to-end check."""

    def _go(self, go_image: str, recipe: BuildRecipe) -> dagger.Container:
        """The pinned Go toolchain with named module and build caches."""
        ctr = (
            dag.container()
            .from_(_check_pinned(go_image))
            .with_mounted_cache(GOMODCACHE, dag.cache_volume("openfga-release-gomod"))
            .with_mounted_cache(
                GOCACHE, dag.cache_volume(f"openfga-release-gobuild-{_cache_key(go_image)}")
            )
            .with_env_variable("GOMODCACHE", GOMODCACHE)
            .with_env_variable("GOCACHE", GOCACHE)
        )
        for name, value in recipe.env().items():
            ctr = ctr.with_env_variable(name, value)
        return ctr

    def _recipe(
        self,
        version: str,
        source: dagger.Directory | None,
        arch: str,
        commit: str | None,
        date: str | None,
        tags: list[str] | None = None,
        go_flags: list[str] | None = None,
        ldflags: list[str] | None = None,
    ) -> BuildRecipe:
        """Validate the inputs into a recipe: every error is raised here, before any build."""
        flags: dict[str, list[str]] = {
            "tags": tags or [],
            "go_flags": go_flags or [],
            "ldflags": ldflags or [],
        }
        if source is None:
            overrides = {k: v for k, v in (("commit", commit), ("date", date)) if v}
            return BuildRecipe.for_release(
                release(version or DEFAULT_VERSION), arch, **flags, **overrides
            )
        if not version:
            raise BuildInputError(
                "--source needs --version to label the build, for example "
                f"--version {DEFAULT_VERSION}-myfork.1 (it is stamped into `openfga version`)"
            )
        return BuildRecipe.create(
            version=version,
            arch=arch,
            commit=commit,
            date=date,
            tags=flags["tags"],
            go_flags=flags["go_flags"],
            ldflags=flags["ldflags"],
        )

    def _built(
        self, recipe: BuildRecipe, source: dagger.Directory | None, go_image: str
    ) -> dagger.File:
        ctr = self._go(go_image, recipe)
        if source is None:
            ctr = ctr.with_exec(recipe.download_args()).with_workdir(recipe.module_dir(GOMODCACHE))
        else:
            ctr = ctr.with_directory("/src", source).with_workdir("/src")
        return ctr.with_exec(recipe.build_args()).file(recipe.output)

    def _checked(self, binary: dagger.File, arch: str) -> dagger.File:
        """The binary, returned only if elfcheck.py proves it static, non-PIE and ``arch``."""
        checker = resources.files(__package__).joinpath("standalone", "elfcheck.py").read_text()
        return (
            dag.container()
            .from_(PYTHON_IMAGE)
            .with_new_file("/check/elfcheck.py", checker)
            .with_file("/check/openfga", binary)
            .with_exec(["python3", "/check/elfcheck.py", "--arch", arch, "/check/openfga"])
            .file("/check/openfga")
        )

    @function
    def build_openfga(
        self,
        version: BuildVersion = "",
        source: Source = None,
        arch: Arch = "amd64",
        commit: Commit = None,
        date: Date = None,
        tags: Annotated[list[str], Doc("extra Go build tags; netgo is always set")] = (),  # type: ignore[assignment]
        go_flags: Annotated[
            list[str], Doc("extra go build flags (PIE and friends are refused)")
        ] = (),  # type: ignore[assignment]
        ldflags: Annotated[list[str], Doc("extra linker flags (external linking is refused)")] = (),  # type: ignore[assignment]
        go_image: GoImage = GO_IMAGE,
    ) -> dagger.File:
        """A static, CGO-free, non-PIE OpenFGA binary for linux/<arch>, ELF-checked."""
        recipe = self._recipe(
            version,
            source,
            arch,
            commit,
            date,
            tags=list(tags),
            go_flags=list(go_flags),
            ldflags=list(ldflags),
        )
        return self._checked(self._built(recipe, source, go_image), recipe.arch)

    @function
    def openfga_image(
        self,
        version: BuildVersion = "",
        source: Source = None,
        arch: Arch = "amd64",
        commit: Commit = None,
        date: Date = None,
        overlay: Overlay = None,
        go_image: GoImage = GO_IMAGE,
    ) -> dagger.Container:
        """A scratch OCI image: checked binary, CA bundle, writable /tmp, non-root user."""
        recipe = self._recipe(version, source, arch, commit, date)
        binary = self._checked(self._built(recipe, source, go_image), recipe.arch)
        return self._image_from(binary, recipe, overlay, go_image)

    def _image_from(
        self,
        binary: dagger.File,
        recipe: BuildRecipe,
        overlay: dagger.Directory | None,
        go_image: str,
    ) -> dagger.Container:
        layout = (
            dag.container()
            .from_(_check_pinned(go_image))  # has coreutils and the Debian CA bundle
            .with_file("/in/openfga", binary)
        )
        if overlay is not None:
            layout = layout.with_directory("/in/overlay", overlay)
        for cmd in image.layout_commands(
            "/rootfs", "/in/openfga", image.CA_BUNDLE_PATH, "/in/overlay" if overlay else None
        ):
            layout = layout.with_exec(cmd)
        # File times are the release date, or 0 when none is known: never the clock.
        epoch = to_epoch(recipe.date) if recipe.date else 0
        rootfs = layout.directory("/rootfs").with_timestamps(epoch)

        ctr = (
            dag.container(platform=dagger.Platform(f"linux/{recipe.arch}"))
            .with_rootfs(rootfs)
            .with_user(image.USER)
            .with_entrypoint(image.ENTRYPOINT)
            .with_default_args(image.DEFAULT_ARGS)
        )
        for port, what in image.PORTS.items():
            ctr = ctr.with_exposed_port(port, description=what)
        for name, value in image.labels(recipe.version, recipe.commit, recipe.date).items():
            ctr = ctr.with_label(name, value)
        return ctr

    # -- PostgreSQL ----------------------------------------------------------------
    # `config` is the repository's images/postgres: the same files the tests run
    # on a real server and a plain-PostgreSQL user copies.

    @function
    def postgres_image(
        self,
        config: PostgresConfig,
        memory: Memory = "1GiB",
        max_connections: MaxConnections = pg.DEFAULT_MAX_CONNECTIONS,
        base: PostgresBase = pg.POSTGRES_IMAGE,
        database: Annotated[str, Doc("database for OpenFGA")] = pg.DEFAULT_DATABASE,
        owner_role: Annotated[str, Doc("NOLOGIN owner")] = pg.DEFAULT_ROLES["owner"],
        migrator_role: Annotated[str, Doc("runs migrate")] = pg.DEFAULT_ROLES["migrator"],
        app_role: Annotated[str, Doc("DML only, for openfga run")] = pg.DEFAULT_ROLES["app"],
        readonly_role: Annotated[str, Doc("SELECT only")] = pg.DEFAULT_ROLES["readonly"],
    ) -> dagger.Container:
        """PostgreSQL for OpenFGA: hardened config, 4 least-privilege roles, TLS, SCRAM."""
        names = pg.Names(
            database=database, owner=owner_role, migrator=migrator_role,
            app=app_role, readonly=readonly_role,
        )  # fmt: skip
        return pg_pipeline.postgres_image(
            config, memory=memory, max_connections=max_connections, base=base, names=names
        )

    @function
    def postgres_rootfs(
        self,
        config: PostgresConfig,
        memory: Memory = "1GiB",
        max_connections: MaxConnections = pg.DEFAULT_MAX_CONNECTIONS,
        base: PostgresBase = pg.POSTGRES_IMAGE,
    ) -> dagger.Directory:
        """The Unikraft base-compat root filesystem (export to kraftfiles/postgres/rootfs)."""
        return pg_pipeline.postgres_rootfs(
            config, memory=memory, max_connections=max_connections, base=base
        )

    @function
    def postgres_service(
        self,
        migrator_password: Annotated[dagger.Secret, Doc("openfga_migrator's password")],
        app_password: Annotated[dagger.Secret, Doc("openfga_app's password")],
        readonly_password: Annotated[dagger.Secret, Doc("openfga_readonly's password")],
        config: PostgresConfig,
        tls_cert: Annotated[dagger.File | None, Doc("server certificate (PEM)")] = None,
        tls_key: Annotated[dagger.Secret | None, Doc("server key (PEM), as a secret")] = None,
        memory: Memory = "1GiB",
    ) -> dagger.Service:
        """An ephemeral PostgreSQL (fresh volume) with the same config and init, TLS on 5432.

        Without --tls-cert/--tls-key it uses a throwaway CA (see postgres-test-tls)."""
        return pg_pipeline.postgres_service(
            config, migrator_password, app_password, readonly_password,
            tls_cert=tls_cert, tls_key=tls_key, memory=memory,
        )  # fmt: skip

    @function
    def postgres_test_tls(
        self,
        hostnames: Annotated[
            list[str] | None, Doc("names the certificate is for (default: postgres, localhost)")
        ] = None,
    ) -> dagger.Directory:
        """A throwaway CA and server certificate (ca.crt, server.crt, server.key): tests only."""
        return pg_pipeline.ephemeral_tls(hostnames or pg_pipeline.DEFAULT_HOSTNAMES)

    # -- migrate -----------------------------------------------------------------

    async def _datastore_env(
        self,
        ctr: dagger.Container,
        datastore_uri: dagger.Secret | None,
        host: str,
        port: int,
        database: str,
        user: str,
        password: dagger.Secret | None,
        sslmode: str,
    ) -> tuple[dagger.Container, list[str]]:
        """Point ``ctr`` at the datastore; every check runs here, before any connection.

        Returns the container and the values to redact from its output. A full
        URI stays a secret (read once, locally, only to check it: OpenFGA gets it
        unchanged); with host/user, the URI holds no password and OpenFGA takes
        it from OPENFGA_DATASTORE_PASSWORD, so it never needs percent-encoding.
        """
        if (datastore_uri is None) == (not host):
            raise migrations.MigrateError(
                "give the datastore either as --datastore-uri env://VAR (a secret) or as "
                "--host with --password env://VAR, not both and not neither"
            )
        for name in migrations.UNSAFE_ENV:
            ctr = ctr.without_env_variable(name)
        if datastore_uri is not None:
            uri = await datastore_uri.plaintext()
            dsn = check_uri_as_given(uri)
            migrations.check_migrator_user(dsn.user)
            redact = [uri] + ([dsn.password] if dsn.password else [])
            return ctr.with_secret_variable(migrations.URI_ENV, datastore_uri), redact
        if password is None:
            raise migrations.MigrateError("--host needs --password env://VAR (a secret)")
        dsn = Dsn(host, database, migrations.check_migrator_user(user), port=port, sslmode=sslmode)
        ctr = ctr.with_env_variable(migrations.URI_ENV, dsn.public_uri())
        return ctr.with_secret_variable(migrations.PASSWORD_ENV, password), []

    async def _migrate_once(
        self, ctr: dagger.Container, argv: list[str], redact: list[str]
    ) -> migrations.MigrateLog:
        # A fresh run id: the engine must run migrate, not answer from its exec cache.
        ran = ctr.with_env_variable(migrations.RUN_ID_ENV, uuid.uuid4().hex).with_exec(
            argv, expect=dagger.ReturnType.ANY
        )
        code = await ran.exit_code()
        out, err = await ran.stdout(), await ran.stderr()
        try:
            return migrations.check_result(code, out, err, redact)
        except migrations.MigrateError as failure:
            # Dagger shows only the message: carry the (redacted) output in it.
            raise migrations.MigrateError(
                f"{failure}\n--- openfga migrate said (redacted) ---\n{failure.detail}",
                failure.detail,
            ) from None

    async def _run_migrate(
        self,
        ctr: dagger.Container,
        target: int | None,
        timeout: int,
        redact: list[str] | None = None,
    ) -> migrations.MigrateReport:
        """Migrate, then a pass to the same target that states the revision reached.

        The second pass must carry the same ``--version``: without it OpenFGA
        would migrate on up to the newest revision. Bounded in time as a whole.
        """
        argv = migrations.migrate_command(target)
        try:
            with anyio.fail_after(timeout):
                first = await self._migrate_once(ctr, argv, redact or [])
                second = await self._migrate_once(ctr, argv, redact or [])
        except TimeoutError:
            raise migrations.MigrateError(
                f"openfga migrate did not finish within {timeout} s: is another migrate holding "
                "the schema (run it once, from one job), or is the database unreachable? "
                "Raise --timeout only for a very large database"
            ) from None
        return migrations.report(first, second)

    @function(cache="never")  # type: ignore[call-overload]  # SDK overloads omit cache
    async def migrate(
        self,
        datastore_uri: Annotated[
            dagger.Secret | None, Doc("full postgres:// URI, as a secret (env://VAR)")
        ] = None,
        host: Annotated[str, Doc("database host, instead of --datastore-uri")] = "",
        port: Annotated[int, Doc("database port")] = 5432,
        database: Annotated[str, Doc("database name")] = "openfga",
        user: Annotated[str, Doc("migrator role")] = migrations.MIGRATOR_ROLE,
        password: Annotated[dagger.Secret | None, Doc("the role's password (with --host)")] = None,
        sslmode: Annotated[str, Doc("require or stricter for public hosts")] = "",
        schema_revision: Annotated[
            int | None, Doc("migrate to this schema revision (default: the newest)")
        ] = None,
        timeout: Annotated[int, Doc("seconds for the whole run")] = migrations.RUN_TIMEOUT,
        version: Version = "",
        arch: EngineArch = "",
        overlay: Overlay = None,
    ) -> str:
        """Run `openfga migrate` as the migrator role; reports the schema revision reached."""
        target = migrations.check_target(schema_revision)
        openfga = self.openfga_image(
            version=version, arch=arch or await engine_arch(), overlay=overlay
        )
        ctr, redact = await self._datastore_env(
            openfga,
            datastore_uri,
            host,
            port,
            database,
            user,
            password,
            sslmode,
        )
        return (await self._run_migrate(ctr, target, timeout, redact)).summary()

    # -- smoke and the end-to-end check ------------------------------------------

    def _smoke_runner(self, token: dagger.Secret | None) -> dagger.Container:
        """A pinned Python with httpx and smoke.py; the key arrives only as a secret."""
        script = resources.files(__package__).joinpath("standalone", "smoke.py").read_text()
        ctr = (
            dag.container()
            .from_(PYTHON_IMAGE)
            .with_mounted_cache("/root/.cache/pip", dag.cache_volume("openfga-release-pip"))
            .with_exec(["pip", "install", "--disable-pip-version-check", *SMOKE_REQUIREMENTS])
            .with_new_file("/smoke/smoke.py", script)
        )
        if token is not None:
            ctr = ctr.with_secret_variable(smoke.TOKEN_ENV, token)
        return ctr

    @function(cache="never")  # type: ignore[call-overload]  # SDK overloads omit cache
    async def smoke(
        self,
        url: Annotated[str, Doc("OpenFGA HTTP API, e.g. https://fga.example.com")],
        token: Annotated[dagger.Secret | None, Doc("preshared key (env://FGA_TOKEN)")] = None,
        service: Annotated[
            dagger.Service | None,
            Doc("bind a service as host 'openfga' (e.g. tcp://localhost:8080 for a local server)"),
        ] = None,
        wait: Annotated[float, Doc("seconds to wait for /healthz to say SERVING")] = 30,
    ) -> str:
        """Smoke-test any OpenFGA endpoint: health, store, model, tuples, checks; cleans up."""
        ctr = self._smoke_runner(token)
        if service is not None:
            ctr = ctr.with_service_binding(OPENFGA_ALIAS, service)
        return await ctr.with_exec(smoke.smoke_command(url, wait=wait)).stdout()

    def _openfga_service(
        self,
        openfga: dagger.Container,
        app_uri: str,
        app_password: dagger.Secret,
        key: dagger.Secret,
        schema: migrations.MigrateReport,
    ) -> dagger.Service:
        """OpenFGA as the DML-only app role, preshared-key authn, no playground, JSON logs."""
        ctr = openfga
        for name, value in openfga_server.server_env().items():
            ctr = ctr.with_env_variable(name, value)
        return (
            ctr.with_env_variable(migrations.URI_ENV, app_uri)
            .with_secret_variable(migrations.PASSWORD_ENV, app_password)
            .with_secret_variable(openfga_server.PRESHARED_KEYS_ENV, key)
            # Ties the server to the migration it follows (not OPENFGA_*: openfga reads those).
            .with_env_variable("E2E_SCHEMA_REVISION", str(schema.revision))
            .with_exposed_port(openfga_server.HTTP_PORT)
            .as_service(args=openfga_server.server_command())
        )

    @function
    @check
    async def test_e2e(
        self,
        config: PostgresConfig,
        overlay: Overlay = None,
        version: Version = "",
        arch: EngineArch = "",
    ) -> str:
        """Ephemeral PostgreSQL, migrate as openfga_migrator, OpenFGA as openfga_app, smoke."""
        passwords = {
            role: dag.set_secret(f"e2e-{role}-password", secrets.token_urlsafe(24))
            for role in ("migrator", "app", "readonly")
        }
        # One throwaway CA: the server's certificate and what OpenFGA verifies it with.
        tls = pg_pipeline.ephemeral_tls()
        # Started here and stopped at the end: a service that is only bound is
        # detached soon after the exec that bound it, and would come back empty
        # (a fresh volume, no schema) for the server and the smoke test.
        database = await pg_pipeline.postgres_service(
            config, passwords["migrator"], passwords["app"], passwords["readonly"], test_tls=tls
        ).start()
        try:
            image_ctr: dagger.Container = self.openfga_image(
                version=version, arch=arch or await engine_arch(), overlay=overlay
            )
            openfga = image_ctr.with_file(POSTGRES_CA, tls.file(pg.CA_CERT))
            return await self._e2e(
                openfga.with_service_binding(POSTGRES_ALIAS, database), passwords
            )
        finally:
            await database.stop()

    async def _e2e(self, openfga: dagger.Container, passwords: dict[str, dagger.Secret]) -> str:
        def uri(role: str) -> str:
            # verify-full: encrypted, and the server proves it is "postgres" of our CA.
            return Dsn(
                POSTGRES_ALIAS, "openfga", role,
                sslmode="verify-full", params={"sslrootcert": POSTGRES_CA},
            ).public_uri()  # fmt: skip

        migrator = openfga.with_env_variable(migrations.URI_ENV, uri(migrations.MIGRATOR_ROLE))
        migrator = migrator.with_secret_variable(migrations.PASSWORD_ENV, passwords["migrator"])
        schema = await self._run_migrate(migrator, None, migrations.RUN_TIMEOUT)

        key = dag.set_secret("e2e-preshared-key", openfga_server.new_preshared_key())
        server = self._openfga_service(
            openfga, uri(migrations.APP_ROLE), passwords["app"], key, schema
        )
        out = await (
            self._smoke_runner(key)
            .with_service_binding(OPENFGA_ALIAS, server)
            .with_exec(smoke.smoke_command(f"http://{OPENFGA_ALIAS}:{openfga_server.HTTP_PORT}"))
            .stdout()
        )
        return f"{schema.summary()}\n{out}"
