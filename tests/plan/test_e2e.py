"""Plan tests for migrate, smoke and test-e2e, offline on the real SDK.

These functions await results (exit codes, stdout), which needs an engine. The
tests replace only those awaited leaves (`Container.exit_code/stdout`,
`File.contents`, `Secret.plaintext`) with recorders, so everything the module
builds before and around them is the real plan.
"""

from __future__ import annotations

from pathlib import Path
from urllib.parse import quote

import anyio
import dagger
import pytest
from dagger import dag
from openfga_release import datastore
from openfga_release.recipes import e2e as e2e_recipe
from openfga_release.recipes import migrate
from openfga_release.recipes import openfga as openfga_server
from openfga_release.recipes.dsn import DsnError
from openfga_release.recipes.errors import InputError
from openfga_release.recipes.migrate import MigrateError
from openfga_release.recipes.postgres import POSTGRES_IMAGE, Names
from openfga_release.recipes.refs import PYTHON_IMAGE
from openfga_release.standalone import smoke

from tests.support import plan
from tests.support.engine import Answer, FakeEngine, Responder, db_info
from tests.support.module import call

PASSWORD = "Sup3r/s3cret@pass#word"


def migrations(*revisions: int) -> Responder:
    """Answers successive ``openfga migrate`` runs: each reports the next revision found."""
    found = iter(revisions)
    return lambda argv, ctr: Answer(stdout=db_info(next(found)))


@pytest.fixture
def engine(monkeypatch) -> FakeEngine:
    fake = FakeEngine()
    fake.respond("openfga migrate", migrations(0, 6))
    fake.respond("smoke.py", lambda argv, ctr: Answer(stdout="smoke: ok"))
    fake.respond("sh", probe_rows(0))  # the revision probe (psql), only with a target
    return fake.install(monkeypatch)


def probe_rows(revision: int) -> Responder:
    """What the psql probe prints for a database at ``revision`` (none: never migrated)."""
    rows = "".join(f"{v},t\n" for v in range(revision, 0, -1))
    return lambda argv, ctr: Answer(stdout=rows)


def migrated(engine: FakeEngine, run: int = 0):
    """The container of the ``run``-th openfga migrate the engine was asked about."""
    return engine.containers("openfga migrate")[run]


def run(fn, *args, **kw):
    return anyio.run(lambda: fn(*args, **kw))


def migrate_execs(ctr) -> list[list[str]]:
    return [s.args["args"] for s in plan.chain(ctr) if s.name == "withExec"]


def test_migrate_with_host_and_secret_password(engine):
    password = dag.set_secret("pw", PASSWORD)
    out = run(call, "migrate", host="db.example.com", password=password, overlay=dag.directory())
    assert out == "schema migrated from revision 0 to 6"
    first, second = engine.containers("openfga migrate")
    assert migrate_execs(first)[-1] == migrate.migrate_command()
    assert "--version" not in migrate_execs(first)[-1]
    env = plan.env_of(first)
    # Public host: sslmode=require by default; the URI names the migrator, holds no password.
    assert env[migrate.URI_ENV] == (
        "postgres://openfga_migrator@db.example.com:5432/openfga?sslmode=require&connect_timeout=10"
    )
    secret_vars = {
        s.args["name"]: s.args["secret"]
        for s in plan.chain(first)
        if s.name == "withSecretVariable"
    }
    assert secret_vars == {migrate.PASSWORD_ENV: password}
    # Everything that could move the schema is unset before ours is set.
    unset = [s.args["name"] for s in plan.chain(first) if s.name == "withoutEnvVariable"]
    assert set(migrate.UNSAFE_ENV) <= set(unset)
    assert "OPENFGA_VERSION" not in env
    # Two runs, each with its own id so neither comes from the exec cache.
    assert env[migrate.RUN_ID_ENV] != plan.env_of(second)[migrate.RUN_ID_ENV]
    assert not any(PASSWORD in text for text in plan.plain_strings(first) if text != PASSWORD)


def test_migrate_reads_any_exit_code_and_both_streams(engine):
    run(call, "migrate", host="10.0.0.5", password=dag.set_secret("pw", PASSWORD))
    exec_step = [s for s in plan.chain(migrated(engine)) if s.name == "withExec"][-1]
    assert exec_step.args["expect"] == "ANY"  # a failure is read and explained, not raised raw


def test_migrate_runs_natively_on_the_engine_platform(engine):
    engine.platform = "linux/arm64"
    run(call, "migrate", host="db.internal", password=dag.set_secret("pw", PASSWORD))
    assert plan.chain(migrated(engine))[0].args == {"platform": "linux/arm64"}
    checked = plan.execs(migrated(engine))
    assert ["python3", "/check/elfcheck.py", "--arch", "arm64"] in [c[:4] for c in checked]


def test_migrate_runs_in_the_openfga_image(engine):
    run(call, "migrate", host="db.internal", password=dag.set_secret("pw", PASSWORD))
    ctr = migrated(engine)
    assert plan.chain(ctr)[0].args == {"platform": "linux/amd64"}
    assert plan.chain(ctr)[1].name == "withRootfs"


def test_migrate_to_a_revision_only_when_asked(engine):
    engine.respond("openfga migrate", migrations(6, 3))
    engine.respond("sh", probe_rows(6))
    out = run(
        call, "migrate", host="db.internal", password=dag.set_secret("pw", PASSWORD),
        schema_revision=3, allow_downgrade=True,
    )  # fmt: skip
    first, second = engine.containers("openfga migrate")
    assert migrate_execs(first)[-1][-2:] == ["--version", "3"]
    # The verification pass must aim at the same revision: without --version
    # OpenFGA would migrate on up to the newest one, undoing the request.
    assert migrate_execs(second)[-1] == migrate_execs(first)[-1]
    assert out.startswith("schema migrated from revision 6 to 3")


def test_migrate_with_a_secret_uri_is_checked_before_it_runs(engine):
    uri = dag.set_secret(
        "uri", "postgres://openfga_migrator:x@db.example.com/openfga?sslmode=require"
    )
    run(call, "migrate", datastore_uri=uri)
    secret_vars = [
        s.args for s in plan.chain(migrated(engine)) if s.name == "withSecretVariable"
    ]
    assert secret_vars == [{"name": migrate.URI_ENV, "secret": uri}]
    assert migrate.URI_ENV not in plan.env_of(migrated(engine))


@pytest.mark.parametrize(
    ("uri", "error", "match"),
    [
        (
            "postgres://openfga_migrator:x@db.example.com/openfga?sslmode=disable",
            DsnError,
            "sslmode=disable",
        ),
        ("postgres://openfga_app:x@db.internal/openfga", InputError, "openfga_app may not"),
        ("postgres://openfga_migrator:x@db.example.com/openfga", DsnError, "names no sslmode"),
        ("postgres://openfga_migrator:pa/ss#1@db.internal/openfga", DsnError, "percent-encoded"),
    ],
)
def test_bad_secret_uri_fails_before_any_run_without_showing_it(engine, uri, error, match):
    with pytest.raises(error, match=match) as err:
        run(call, "migrate", datastore_uri=dag.set_secret("uri", uri))
    assert ":x@" not in str(err.value) and "pa/ss" not in str(err.value)
    assert engine.containers("openfga migrate") == []


@pytest.mark.parametrize(
    ("kw", "match"),
    [
        ({}, "either"),
        ({"host": "db.internal"}, "--password"),
        ({"host": "db.example.com", "sslmode": "disable"}, "sslmode=disable"),
        ({"host": "db.internal", "user": "openfga_readonly"}, "may not run migrations"),
        ({"host": "db.internal", "schema_revision": 0}, "schema revision"),
    ],
)
def test_bad_migrate_input_fails_before_any_run(engine, kw, match):
    if "host" in kw and kw != {"host": "db.internal"}:
        kw["password"] = dag.set_secret("pw", PASSWORD)
    with pytest.raises(InputError, match=match):
        run(call, "migrate", **kw)
    assert engine.containers("openfga migrate") == []


def test_migrate_failure_is_explained_with_the_output_redacted(engine):
    secret_password = "Hunter2-is-n0t-a-password"
    uri = f"postgres://openfga_migrator:{secret_password}@db.internal/openfga"
    # What OpenFGA prints on a bad login, echoing the URI it was given.
    stderr = (
        f"failed to connect to `postgres://openfga_migrator:{secret_password}@db.internal/openfga`:"
        ' FATAL: password authentication failed for user "openfga_migrator"'
    )
    engine.respond("openfga migrate", lambda argv, ctr: Answer(1, stderr=stderr))
    with pytest.raises(MigrateError) as err:
        run(call, "migrate", datastore_uri=dag.set_secret("uri", uri))
    message = str(err.value)
    assert "password" in message.splitlines()[0]  # the one-sentence explanation
    assert "openfga migrate said (redacted)" in message  # and the output, for the details
    assert "FATAL" in message
    assert secret_password not in message
    assert len(engine.containers("openfga migrate")) == 1  # no second pass after a failure


def test_migrate_timeout_is_a_sentence_not_a_bare_timeout(engine, monkeypatch):
    async def hang(ctr):
        await anyio.sleep(30)

    monkeypatch.setattr(dagger.Container, "exit_code", hang)
    monkeypatch.setattr(migrate, "CONNECT_TIMEOUT", 0)  # so a 1 s bound is accepted
    with pytest.raises(MigrateError, match="did not finish within 1 s"):
        run(call, "migrate", host="db.internal", password=dag.set_secret("pw", PASSWORD), timeout=1)


def test_smoke_runs_the_plain_script_in_a_pinned_python_with_the_key_as_a_secret(engine):
    token = dag.set_secret("tok", "a-preshared-key-0123456789")
    out = run(call, "smoke", url="https://fga.example.com", token=token)
    assert out == "smoke: ok"
    (ctr,) = engine.containers("smoke.py")
    steps = plan.chain(ctr)
    assert plan.images(ctr) == [PYTHON_IMAGE]
    assert ["pip", "install", "--disable-pip-version-check", "httpx==0.28.1", "sniffio==1.3.1"] in (
        plan.execs(ctr))
    script = next(s for s in steps if s.name == "withNewFile")
    assert script.args["path"] == "/smoke/smoke.py"
    assert script.args["contents"] == Path(smoke.__file__).read_text()
    assert plan.execs(ctr)[-1] == smoke.smoke_command("https://fga.example.com")
    secret_vars = {
        s.args["name"]: s.args["secret"] for s in steps if s.name == "withSecretVariable"
    }
    assert secret_vars == {smoke.TOKEN_ENV: token}


def test_e2e_plan_wires_postgres_migrator_app_server_and_smoke(engine, repo):
    config = dag.directory()
    out = run(call, "test_e2e", postgres_config=config, overlay=dag.directory())
    assert out.startswith("schema migrated from revision 0 to 6")

    # migrate: as the migrator, to the service bound as "postgres", verifying its TLS.
    migrator = migrated(engine)
    assert plan.env_of(migrator)[migrate.URI_ENV] == (
        "postgres://openfga_migrator@postgres:5432/openfga?sslmode=verify-full"
        "&sslrootcert=%2Fetc%2Fssl%2Fpostgres%2Fca.crt&connect_timeout=10"
    )
    bindings = [s for s in plan.chain(migrator) if s.name == "withServiceBinding"]
    assert [b.args["alias"] for b in bindings] == ["postgres"]
    pg_service = bindings[0].args["service"]
    pg_steps = list(plan.walk(pg_service))
    # The CA OpenFGA trusts comes from the very directory the server's certificate does.
    ca = next(
        s
        for s in plan.chain(migrator)
        if s.name == "withFile" and s.args["path"] == e2e_recipe.POSTGRES_CA
    )
    ca_dir = plan.chain(ca.args["source"])
    assert ca_dir[-1].args == {"path": "ca.crt"}
    server_cert = next(
        s for s in pg_steps if s.name == "withFile" and s.args["path"].endswith("/server.crt")
    )
    cert_source = server_cert.args["source"]
    assert plan.chain(cert_source)[-1].args == {"path": "server.crt"}
    # Same ephemeral_tls() call, not an equal-looking second one (whose key would differ):
    # the two files share the very selections of one directory.
    ca_sel = list(ca.args["source"]._ctx.selections)[:-1]
    cert_sel = list(cert_source._ctx.selections)[:-1]
    assert all(a is b for a, b in zip(ca_sel, cert_sel, strict=True))
    assert any(s.name == "asService" and s.args.get("useEntrypoint") for s in pg_steps)
    assert any(s.name == "withDirectory" and s.args.get("source") is config for s in pg_steps), (
        "the Postgres service is built from the images/postgres config"
    )

    # smoke: bound to the OpenFGA service, key only as a secret.
    (smoke_ctr,) = engine.containers("smoke.py")
    assert plan.execs(smoke_ctr)[-1] == smoke.smoke_command("http://openfga:8080")
    server_binding = next(s for s in plan.chain(smoke_ctr) if s.name == "withServiceBinding")
    assert server_binding.args["alias"] == "openfga"
    server = server_binding.args["service"]
    server_steps = plan.chain(server)
    assert server_steps[-1].name == "asService"
    assert server_steps[-1].args["args"] == openfga_server.server_command()
    env = plan.env_of(server)
    for name, value in openfga_server.server_env().items():
        assert env[name] == value
    # openfga reads every OPENFGA_* variable as a flag: only the intended ones are set.
    assert {k for k in env if k.startswith("OPENFGA_")} == {
        *(k for k in openfga_server.server_env() if k.startswith("OPENFGA_")),
        migrate.URI_ENV,
    }
    assert env["GOGC"] == "200" and "GOMEMLIMIT" not in env  # no memory limit in Dagger
    assert env["OPENFGA_AUTHN_METHOD"] == "preshared"
    assert env["OPENFGA_PLAYGROUND_ENABLED"] == "false"
    assert env[migrate.URI_ENV].startswith("postgres://openfga_app@postgres:5432/openfga")
    secret_names = {s.args["name"] for s in server_steps if s.name == "withSecretVariable"}
    assert secret_names == {migrate.PASSWORD_ENV, openfga_server.PRESHARED_KEYS_ENV}
    smoke_secret = next(s for s in plan.chain(smoke_ctr) if s.name == "withSecretVariable")
    server_key = next(
        s
        for s in server_steps
        if s.name == "withSecretVariable" and s.args["name"] == openfga_server.PRESHARED_KEYS_ENV
    )
    assert smoke_secret.args["secret"] is server_key.args["secret"]


def test_e2e_keeps_postgres_up_from_before_migrate_until_after_smoke(engine):
    run(call, "test_e2e", postgres_config=dag.directory(), overlay=dag.directory())
    assert engine.events == ["start", "openfga migrate", "openfga migrate", "smoke.py", "stop"]


def test_e2e_stops_postgres_when_the_smoke_test_fails(engine):
    engine.respond("smoke.py", lambda argv, ctr: Answer(1, stderr="step 'check-allowed' failed"))
    with pytest.raises(RuntimeError, match="check-allowed"):
        run(call, "test_e2e", postgres_config=dag.directory(), overlay=dag.directory())
    assert engine.events[-1] == "stop"


def test_e2e_secrets_never_appear_as_plain_strings(engine):
    created = []
    real_set_secret = dagger.Client.set_secret

    def recording_set_secret(self, name, plaintext, **kw):
        created.append(plaintext)
        return real_set_secret(self, name, plaintext, **kw)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(dagger.Client, "set_secret", recording_set_secret)
        run(call, "test_e2e", postgres_config=dag.directory(), overlay=dag.directory())
    assert len(created) == 4  # three role passwords and the preshared key
    containers = engine.containers("openfga migrate") + engine.containers("smoke.py")
    for ctr in containers:
        for step in plan.walk(ctr):
            if step.name == "setSecret":
                continue
            for text in plan.strings_in(step.args):
                for secret in created:
                    assert secret not in text, step.name


# -- the downgrade guard: a read-only probe before migrating to a given revision


def secret_vars(ctr) -> dict:
    steps = plan.chain(ctr)
    return {s.args["name"]: s.args["secret"] for s in steps if s.name == "withSecretVariable"}


async def an_image() -> dagger.Container:
    return dag.container()


def run_migrate(**kw):
    kw.setdefault("names", Names())
    return run(datastore.run_migrate, an_image, **kw)


def host_kw(**kw):
    return {"host": "db.internal", "password": dag.set_secret("pw", PASSWORD), **kw}


def test_a_target_below_the_current_revision_is_refused_before_migrate_runs(engine):
    engine.respond("sh", probe_rows(6))
    uri = f"postgres://openfga_migrator:{quote(PASSWORD, safe='')}@db.internal/openfga"
    with pytest.raises(migrate.DowngradeError) as err:
        run_migrate(datastore_uri=dag.set_secret("uri", uri), target=4)
    message = str(err.value)
    assert "revision 4" in message and "current schema revision 6" in message
    assert "tuple.condition_name" in message and "changelog.condition_context" in message
    assert "idx_user_lookup" in message and "--allow-downgrade" in message
    assert PASSWORD not in message and uri not in message
    assert engine.events == ["sh"]  # read only: openfga migrate never ran


def test_an_allowed_downgrade_runs_and_says_what_it_dropped(engine):
    engine.respond("sh", probe_rows(6))
    engine.respond("openfga migrate", migrations(6, 4))
    report = run_migrate(**host_kw(target=4, allow_downgrade=True))
    assert engine.events == ["sh", "openfga migrate", "openfga migrate"]
    assert report.summary().startswith("schema migrated from revision 6 to 4 (DOWNGRADE")
    assert "tuple.condition_name" in report.summary()
    assert migrate_execs(migrated(engine))[-1][-2:] == ["--version", "4"]


@pytest.mark.parametrize(("current", "target"), [(0, 6), (3, 6), (6, 6)])
def test_a_target_at_or_above_the_current_revision_needs_no_permission(engine, current, target):
    engine.respond("sh", probe_rows(current))
    engine.respond("openfga migrate", migrations(current, target))
    report = run_migrate(**host_kw(target=target))
    assert report.revision == target and "DOWNGRADE" not in report.summary()


def test_no_target_no_probe(engine):
    run_migrate(**host_kw())
    assert engine.events == ["openfga migrate", "openfga migrate"]


def test_the_probe_in_host_mode_is_psql_from_the_pinned_postgres_as_the_migrator(engine):
    password = dag.set_secret("pw", PASSWORD)
    engine.respond("sh", probe_rows(6))
    engine.respond("openfga migrate", migrations(6, 6))
    run_migrate(host="db.example.com", password=password, target=6)
    (probe,) = engine.containers("sh")
    assert plan.images(probe) == [POSTGRES_IMAGE]
    assert plan.execs(probe)[-1] == migrate.probe_command()
    env = plan.env_of(probe)
    assert env[migrate.PROBE_URI_ENV] == (
        "postgres://openfga_migrator@db.example.com:5432/openfga?sslmode=require&connect_timeout=10"
    )
    secrets = secret_vars(probe)
    assert secrets == {"PGPASSWORD": password}
    unset = {s.args["name"] for s in plan.chain(probe) if s.name == "withoutEnvVariable"}
    assert {"PGHOST", "PGSSLMODE", "PGPASSWORD", "PGSERVICE"} <= unset
    script = next(s for s in plan.chain(probe) if s.name == "withNewFile")
    assert script.args == {"path": migrate.PROBE_SCRIPT_PATH, "contents": migrate.PROBE_SCRIPT}
    assert not any(PASSWORD in text for text in plan.plain_strings(probe) if text != PASSWORD)


def test_the_probe_in_uri_mode_gets_the_secret_uri_and_the_files_it_names(engine):
    uri = dag.set_secret(
        "uri",
        "postgres://openfga_migrator:x@db.example.com/openfga?sslmode=verify-full"
        "&sslrootcert=/etc/ssl/postgres/ca.crt",
    )
    engine.respond("sh", probe_rows(6))
    engine.respond("openfga migrate", migrations(6, 6))
    run_migrate(datastore_uri=uri, target=6)
    (probe,) = engine.containers("sh")
    secrets = secret_vars(probe)
    assert secrets == {migrate.PROBE_URI_ENV: uri}
    copied = {s.args["path"] for s in plan.chain(probe) if s.name == "withFile"}
    assert copied == {"/etc/ssl/postgres/ca.crt", datastore.PROBE_CA_BUNDLE}
    assert "PGSSLROOTCERT" not in plan.env_of(probe)  # the URI's own CA wins


def test_verify_full_without_a_ca_trusts_what_openfga_trusts(engine):
    uri = "postgres://openfga_migrator:x@db.example.com/openfga?sslmode=verify-full"
    engine.respond("sh", probe_rows(6))
    engine.respond("openfga migrate", migrations(6, 6))
    run_migrate(datastore_uri=dag.set_secret("uri", uri), target=6)
    (probe,) = engine.containers("sh")
    assert plan.env_of(probe)["PGSSLROOTCERT"] == datastore.PROBE_CA_BUNDLE


def test_a_failed_probe_is_explained_redacted_and_nothing_migrates(engine):
    secret_password = "Hunter2-is-n0t-a-password"
    uri = f"postgres://openfga_migrator:{secret_password}@db.internal/openfga"
    stderr = (
        f'psql: error: connection to server at "db.internal" failed: FATAL:  password '
        f'authentication failed for user "openfga_migrator" ({uri})'
    )
    engine.respond("sh", lambda argv, ctr: Answer(2, stderr=stderr))
    with pytest.raises(MigrateError) as err:
        run_migrate(datastore_uri=dag.set_secret("uri", uri), target=6)
    assert "refused the password" in str(err.value) and "nothing was migrated" in str(err.value)
    assert secret_password not in str(err.value)
    assert engine.events == ["sh"]


def test_migrate_with_a_host_refuses_an_oversized_password_before_any_run(engine):
    with pytest.raises(InputError, match="--password") as err:
        run(call, "migrate", host="db.internal", password=dag.set_secret("pw", "x" * 1025))
    assert "x" * 20 not in str(err.value)
    assert engine.events == []


def test_migrate_removes_every_pg_variable_pgx_would_read(engine):
    from openfga_release.recipes.dsn import PGX_ENV

    run(call, "migrate", host="db.internal", password=dag.set_secret("pw", PASSWORD))
    chain = plan.chain(migrated(engine))
    removed = {s.args["name"] for s in chain if s.name == "withoutEnvVariable"}
    assert set(PGX_ENV) <= removed and "PGHOST" in removed and "PGSSLMODE" in removed


def test_every_smoke_run_is_a_new_exec_never_a_cached_answer(engine):
    for _ in range(2):
        run(call, "smoke", url="https://fga.example.com", token=dag.set_secret("t", "k" * 20))
    ids = [plan.env_of(c).get("OPENFGA_RELEASE_RUN_ID") for c in engine.containers("smoke.py")]
    assert len(ids) == 2 and all(ids) and ids[0] != ids[1]
