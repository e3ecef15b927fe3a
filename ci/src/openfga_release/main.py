"""Build, test, publish and deploy OpenFGA on PostgreSQL: the module's API surface.

The knobs many functions share (what to build, the overlays, the PostgreSQL
names) are the constructor's, held once: ``dagger call --source ./fork
--version v1.22.1-acme.1 test-e2e`` builds, migrates with and checks the fork.
Each function is a one-liner into its wiring file; the knowledge lives in
``recipes/`` (docs/ARCHITECTURE.md). Every function only plans a lazy
pipeline, after validating its plain arguments: nothing runs before that.
"""

from __future__ import annotations

import uuid
from typing import Annotated

import dagger
from dagger import DefaultPath, Doc, check, function

from . import args, e2e, openfga
from . import datastore as ds
from . import kraftcloud as kc
from . import kubernetes as kw
from . import registry as publishing
from . import release as rls
from . import verify as vf
from .backup import Backup, backup_image
from .postgres import Postgres, postgres_rootfs
from .recipes import migrate as migrations
from .recipes import postgres as pg
from .recipes.errors import InputError
from .recipes.gobuild import recipe_for
from .recipes.kraftcloud import package as kraft_pkg
from .recipes.releases import DEFAULT_VERSION, GO_IMAGE
from .sdk import object_type
from .standalone import smoke as smoke_script


@object_type
class OpenfgaRelease:
    """Release system for OpenFGA on PostgreSQL: build, PostgreSQL, migrate, end-to-end check."""

    version: args.Version = DEFAULT_VERSION
    source: args.Source = None
    commit: args.Commit = None
    date: args.Date = None
    go_image: args.GoImage = GO_IMAGE
    overlay: args.Overlay = None
    postgres_config: args.PostgresConfig = None
    database: args.Database = pg.DEFAULT_DATABASE
    owner_role: args.OwnerRole = pg.DEFAULT_ROLES["owner"]
    migrator_role: args.MigratorRole = pg.DEFAULT_ROLES["migrator"]
    app_role: args.AppRole = pg.DEFAULT_ROLES["app"]
    readonly_role: args.ReadonlyRole = pg.DEFAULT_ROLES["readonly"]

    # -- plain helpers (not functions): validate, then hand plain objects to the wiring

    def _names(self) -> pg.Names:
        return pg.Names(
            database=self.database, owner=self.owner_role, migrator=self.migrator_role,
            app=self.app_role, readonly=self.readonly_role,
        )  # fmt: skip

    def _build(
        self,
        arch: str,
        tags: tuple[str, ...] = (),
        go_flags: tuple[str, ...] = (),
        ldflags: tuple[str, ...] = (),
    ) -> openfga.Build:
        recipe = recipe_for(
            self.version, from_source=self.source is not None, arch=arch, commit=self.commit,
            date=self.date, tags=tags, go_flags=go_flags, ldflags=ldflags,
        )  # fmt: skip
        return openfga.Build(recipe, self.source, self.go_image, self.overlay)

    async def _native(self, arch: str) -> openfga.Build:
        """The build for ``arch``, or for the engine's own platform; validated first."""
        self._build(arch or "amd64")  # every plain input fails here, before any engine call
        return self._build(arch or await openfga.engine_arch())

    # -- OpenFGA

    @function
    def build_openfga(
        self,
        arch: args.Arch = "amd64",
        tags: Annotated[tuple[str, ...], Doc("extra Go build tags; netgo is always set")] = (),
        go_flags: Annotated[tuple[str, ...], Doc("extra go build flags (an allow-list)")] = (),
        ldflags: Annotated[tuple[str, ...], Doc("extra linker flags (an allow-list)")] = (),
    ) -> dagger.File:
        """A static, CGO-free, non-PIE OpenFGA binary for linux/<arch>, ELF-checked."""
        return openfga.binary(self._build(arch, tags, go_flags, ldflags))

    @function
    def openfga_image(self, arch: args.Arch = "amd64") -> dagger.Container:
        """A scratch OCI image: checked binary, CA bundle, writable /tmp, non-root user."""
        return openfga.image(self._build(arch))

    # -- PostgreSQL

    @function
    def postgres(
        self,
        memory: args.Memory = f"{pg.DEFAULT_MEMORY_MIB}MiB",
        max_connections: args.MaxConnections = pg.DEFAULT_MAX_CONNECTIONS,
        base: args.PostgresBase = pg.POSTGRES_IMAGE,
    ) -> Postgres:
        """PostgreSQL for OpenFGA (image, Unikraft rootfs, service), sized and named once."""
        if self.postgres_config is None:
            raise InputError("no PostgreSQL config: pass --postgres-config images/postgres")
        names = self._names()
        pg.render_memory_conf(memory, max_connections)  # bad sizes fail here
        pg.check_image_pinned(base)
        return Postgres(
            config=self.postgres_config, memory=memory, max_connections=max_connections,
            base=base, database=names.database, owner_role=names.owner,
            migrator_role=names.migrator, app_role=names.app, readonly_role=names.readonly,
        )  # fmt: skip

    # -- Kubernetes

    @function
    def kubernetes(
        self, kubeconfig: kw.Kubeconfig = None, namespace: kw.Namespace = "openfga",
        flavor: kw.Flavor = "statefulset", postgres_memory: kw.PostgresMemory = "1Gi",
        postgres_storage: kw.PostgresStorage = "10Gi", storage_class: kw.StorageClass = "",
        openfga_replicas: kw.OpenfgaReplicas = 2, backup_image: kw.BackupImage = "",
    ) -> kw.Kubernetes:  # fmt: skip
        """OpenFGA and PostgreSQL on Kubernetes: manifests, role, deploy, dry-run."""
        if self.postgres_config is None:
            raise InputError("no PostgreSQL config: pass --postgres-config images/postgres")
        names = self._names()
        return kw.Kubernetes(
            kubeconfig=kubeconfig, namespace=namespace, flavor=flavor,
            postgres_config=self.postgres_config, openfga_version=self.version,
            postgres_memory=postgres_memory, postgres_storage=postgres_storage,
            storage_class=storage_class, openfga_replicas=openfga_replicas,
            database=names.database, owner_role=names.owner, migrator_role=names.migrator,
            app_role=names.app, readonly_role=names.readonly, backup_image=backup_image,
        )  # fmt: skip

    # -- KraftCloud

    @function
    def kraftcloud(
        self,
        kraftfiles: Annotated[dagger.Directory, DefaultPath("/kraftfiles"), Doc("kraftfiles/")],
        token: kc.Token = None, metro: kc.Metro = "fra", user: kc.User = "",
        name: kc.Name = "openfga", kraft_sha256: kc.KraftSha256 = kraft_pkg.KRAFT_SHA256,
        domain: kc.Domain = "", scale_to_zero: kc.ScaleToZero = "idle",
        openfga_memory_mb: kc.OpenfgaMemoryMb = 512, postgres_memory_mb: kc.PostgresMemoryMb = 1024,
        volume_size_mb: kc.VolumeSizeMb = 1024, postgres_memory: args.Memory = "640MiB",
    ) -> kc.KraftCloud:  # fmt: skip
        """OpenFGA + PostgreSQL on KraftCloud: package, deploy, dry-run, status, backup."""
        postgres = None
        if self.postgres_config is not None:
            postgres = postgres_rootfs(self.postgres_config, memory=postgres_memory)
        return kc.KraftCloud(
            token=token, metro=metro, user=user, name=name, kraftfiles=kraftfiles,
            kraft_sha256=kraft_sha256, domain=domain, scale_to_zero=scale_to_zero,
            openfga_memory_mb=openfga_memory_mb, postgres_memory_mb=postgres_memory_mb,
            volume_size_mb=volume_size_mb,
            # Lazy: nothing is built until `package` runs. Unikraft runs amd64 here.
            openfga_rootfs=openfga.image(self._build("amd64")).rootfs(), postgres_rootfs=postgres,
            backup_rootfs=backup_image().rootfs(),
        )  # fmt: skip

    # -- backups

    @function
    def backup(
        self,
        endpoint: Annotated[str, Doc("S3 endpoint, https://... (http:// only for private hosts)")],
        bucket: Annotated[str, Doc("bucket")],
        access_key_id: Annotated[dagger.Secret, Doc("S3 access key id")],
        secret_access_key: Annotated[dagger.Secret, Doc("S3 secret access key")],
        prefix: Annotated[str, Doc("key prefix, e.g. openfga/production")] = "",
        region: Annotated[str, Doc("S3 region")] = "us-east-1",
        s3_ca: Annotated[dagger.File | None, Doc("CA bundle of the S3 endpoint")] = None,
        base: args.PostgresBase = pg.POSTGRES_IMAGE,
    ) -> Backup:
        """Logical backups to S3-compatible storage: backup, restore, list-backups, verify."""
        backup = Backup(
            endpoint=endpoint, bucket=bucket, access_key_id=access_key_id,
            secret_access_key=secret_access_key, prefix=prefix, region=region, s3_ca=s3_ca,
            base=pg.check_image_pinned(base),
        )  # fmt: skip
        backup._store()  # bad object-store settings fail here, before any container
        return backup

    # -- migrate, smoke, the end-to-end check

    @function(cache="never")  # type: ignore[call-overload]  # SDK overloads omit cache
    async def migrate(
        self, datastore_uri: ds.Uri = None, host: ds.Host = "", port: ds.Port = 5432,
        user: ds.User = "", password: ds.Password = None, sslmode: ds.SslMode = "",
        schema_revision: ds.SchemaRevision = None, timeout: ds.Timeout = migrations.RUN_TIMEOUT,
        allow_downgrade: ds.AllowDowngrade = False, arch: args.EngineArch = "",
    ) -> str:
        """Run `openfga migrate` as the migrator role; reports the schema revision reached."""
        target = migrations.check_target(schema_revision)
        self._build(arch or "amd64")  # plain build inputs fail here, before any engine call

        async def image() -> dagger.Container:
            return openfga.image(await self._native(arch))

        report = await ds.run_migrate(
            image, names=self._names(), datastore_uri=datastore_uri, host=host, port=port,
            user=user, password=password, sslmode=sslmode, target=target, timeout=timeout,
            allow_downgrade=allow_downgrade,
        )  # fmt: skip
        return report.summary()

    @function(cache="never")  # type: ignore[call-overload]  # SDK overloads omit cache
    async def smoke(
        self, url: vf.Url, token: vf.Token = None, service: vf.Service = None,
        wait: Annotated[float, Doc("seconds to wait for /healthz to say SERVING")] = 30,
    ) -> str:
        """Smoke-test any OpenFGA endpoint: health, store, model, tuples, checks; cleans up."""
        argv = smoke_script.smoke_command(url, wait=wait, token=token is not None)
        ctr = openfga.smoke_runner(token)
        if service is not None:
            ctr = ctr.with_service_binding(openfga.ALIAS, service)
        # A fresh run id: a live server's answer is never replayed from the exec cache.
        return await ctr.with_env_variable(vf.RUN_ID_ENV, uuid.uuid4().hex).with_exec(argv).stdout()

    @function(cache="never")  # type: ignore[call-overload]  # SDK overloads omit cache
    async def verify(
        self, url: vf.Url, tests: vf.Tests, token: vf.Token = None, service: vf.Service = None,
        timeout: vf.Timeout = 30,
    ) -> str:  # fmt: skip
        """Run a team's own .fga.yaml model tests against any OpenFGA, in throwaway stores."""
        return await vf.verify(url, token, tests, service, timeout)

    @function(cache="never")  # type: ignore[call-overload]  # SDK overloads omit cache
    async def bench(
        self, url: vf.Url, token: vf.Token = None, objectives: vf.Objectives = (),
        requests: vf.Requests = 20000, duration: vf.Duration = 60,
        concurrency: vf.Concurrency = 16, tuples: vf.Tuples = 100000, service: vf.Service = None,
    ) -> str:  # fmt: skip
        """Bounded load (check, batch-check, list-objects) with a gate on latency/throughput."""
        return await vf.bench(
            url, token, tuples=tuples, requests=requests, duration=duration,
            concurrency=concurrency, objectives=objectives, service=service,
        )  # fmt: skip

    @function(cache="never")  # type: ignore[call-overload]  # SDK overloads omit cache
    @check
    async def test_e2e(self, arch: args.EngineArch = "") -> str:
        """Ephemeral PostgreSQL, migrate as the migrator role, OpenFGA as the app role, smoke."""
        postgres = self.postgres()  # plain inputs first: nothing asks the engine before
        build = await self._native(arch)
        return await e2e.run(postgres, openfga.image(build))

    # -- publish and release: wiring in registry.py and release.py, rules in recipes/

    @function
    def registry(
        self, address: rls.Address, namespace: rls.Namespace = "", username: rls.Username = "",
        password: rls.Password = None,
    ) -> publishing.Registry:  # fmt: skip
        """An OCI registry (any) to publish to; publish returns digest references."""
        return rls.registry(address, namespace, username, password, self.go_image)

    def _release_inputs(self) -> rls.Inputs:
        return rls.inputs(
            version=self.version, date=self.date, from_source=self.source is not None,
            build=self._build, postgres_config=self.postgres_config, names=self._names(),
            e2e=self.test_e2e, go_image=self.go_image,
        )  # fmt: skip

    @function(cache="never")  # type: ignore[call-overload]  # SDK overloads omit cache
    async def release(
        self, registry: rls.Address, namespace: rls.Namespace = "", username: rls.Username = "",
        password: rls.Password = None, signing_key: rls.SigningKey = None,
        signing_password: rls.SigningPassword = None, public_key: rls.PublicKey = None,
        oidc_token: rls.OidcToken = None, latest: rls.Latest = False, force: rls.Force = False,
    ) -> dagger.Directory:  # fmt: skip
        """Both arches, e2e check, dist/ (binaries, checksums, SBOMs, release.json), push, sign."""
        target = self.registry(registry, namespace, username, password)
        return await rls.publish_release(
            self._release_inputs(), target, latest=latest, force=force, public_key=public_key,
            signing_key=signing_key, signing_password=signing_password, oidc_token=oidc_token,
        )  # fmt: skip

    @function(cache="never")  # type: ignore[call-overload]  # it runs the e2e check
    @check
    async def release_dry_run(self) -> str:
        """Every artifact of the release matrix built, dist/ written, nothing pushed."""
        return await rls.dry_run(self._release_inputs())
