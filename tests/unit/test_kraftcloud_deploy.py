"""The KraftCloud deploy recipe against the FAKE platform (no workloads).

The fake (tests/support/ukc_fake.py) validates every request against the SDK's
models; here its ScriptedRunner runs nothing inside the instances, and the
health probe asks the fake which instances its edge would route to. The real
workloads (OpenFGA, PostgreSQL, netns, TLS edge) are in
tests/real/test_kraftcloud_e2e.py.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator

import pytest
from openfga_release.recipes.kraftcloud.api import ItemsFailed, Platform, PlatformError
from openfga_release.recipes.kraftcloud.crash import StopCode
from openfga_release.recipes.kraftcloud.deploy import Deploy, DeployError, Printer
from openfga_release.recipes.kraftcloud.plan import Spec
from openfga_release.recipes.kraftcloud.retry import RetryPolicy

from tests.support.ukc_fake import Crash, Fault, UkcFake

SECRETS = {"migrator": "Mig-pw:@/1x", "app": "App-pw%2?z", "readonly": "Ro-pw#3",
           "keys": "k3y-aaaaaaaaaaaaaaaaaaaa,k3y-bbbbbbbbbbbbbbbbbbbb"}
PG = "index.unikraft.io/team/openfga-postgres@sha256:" + "a" * 64
FGA_OLD = "index.unikraft.io/team/openfga@sha256:" + "1" * 64
FGA_NEW = "index.unikraft.io/team/openfga@sha256:" + "2" * 64


@pytest.fixture
def fake() -> Iterator[UkcFake]:
    with UkcFake() as f:
        yield f
    assert f.violations == []


def deploy(fake: UkcFake, image: str = FGA_OLD, *, dry_run: bool = False,
           policy: RetryPolicy | None = None) -> tuple[Printer, Platform, object]:
    out = Printer(list(SECRETS.values()) + SECRETS["keys"].split(",") + [fake.token],
                  sink=lambda s: None)

    async def probe(url: str) -> str:
        fqdn = url.removeprefix("https://")
        return '{"status":"SERVING"}' if fake.routable(fqdn) else "HTTP 503 no backend"

    async def go() -> tuple[Platform, object]:
        platform = Platform(fake.base_url, fake.token, policy or RetryPolicy(base_delay=0.01),
                            log=out)
        try:
            result = await Deploy(platform, Spec(openfga_image=image, postgres_image=PG), SECRETS,
                                  out, smoke=False, health=probe).run(dry_run=dry_run)
            return platform, result
        finally:
            await platform.aclose()
    platform, result = asyncio.run(go())
    return out, platform, result


def names(fake: UkcFake) -> set[str]:
    return {i.name for i in fake.instances.values()}


def test_dry_run_changes_nothing_and_prints_the_plan(fake: UkcFake) -> None:
    out, _, _ = deploy(fake, dry_run=True)
    assert {op for op in fake.ops()} == {"get_instances", "get_volumes", "get_service_groups"}
    text = "\n".join(out.lines)
    for word in ("create  volume", "create  postgres", "create  service-group", "run     migrate",
                 "create  openfga"):
        assert word in text


def test_fresh_deploy_then_redeploy_keeps_everything(fake: UkcFake) -> None:
    deploy(fake)
    spec = Spec(openfga_image=FGA_OLD, postgres_image=PG)
    assert names(fake) == {spec.postgres, spec.app}
    pg = next(i for i in fake.instances.values() if i.name == spec.postgres)
    assert not any(k.endswith("_PASSWORD") for k in pg.env)  # first boot only
    assert [i.name for i in fake.instances.values() if i.group] == [spec.app]  # pg: no port
    assert all(v.delete_lock for v in fake.volumes.values())  # the platform refuses deletes
    creates_before = fake.ops().count("create_instance")
    assert creates_before == 4  # postgres (with passwords), postgres again, migrate, openfga
    out2, _, _ = deploy(fake)
    assert fake.ops().count("create_instance") == creates_before  # nothing new
    assert "keep    openfga" in "\n".join(out2.lines)


def test_upgrade_runs_migrate_and_canary_then_swaps(fake: UkcFake) -> None:
    deploy(fake, FGA_OLD)
    old = Spec(openfga_image=FGA_OLD, postgres_image=PG)
    new = Spec(openfga_image=FGA_NEW, postgres_image=PG)
    _, _, result = deploy(fake, FGA_NEW)
    assert names(fake) == {new.postgres, new.app}
    assert result.removed == [old.app]  # type: ignore[attr-defined]
    made = [b["name"] for meth, p, b in fake.requests if meth == "POST" and p == "/v1/instances"]
    assert made[-3:] == [new.migrate, new.canary, new.app]


def test_failed_migration_stops_the_deploy_and_removes_only_its_instance(fake: UkcFake) -> None:
    deploy(fake, FGA_OLD)
    new = Spec(openfga_image=FGA_NEW, postgres_image=PG)
    fake.faults.crash(Crash(new.migrate, exit_code=1, console=(
        'panic: failed to run migrations: password authentication failed for user '
        '"openfga_migrator" postgres://openfga_migrator:Mig-pw:@/1x@db.internal\n')))
    with pytest.raises(DeployError) as err:
        deploy(fake, FGA_NEW)
    msg = str(err.value)
    assert "migrations failed" in msg and "openfga_migrator" in msg
    assert SECRETS["migrator"] not in msg
    old = Spec(openfga_image=FGA_OLD, postgres_image=PG)
    assert names(fake) == {old.postgres, old.app}  # old serves; migrate instance removed
    assert not any(op.startswith("delete_volume") for op in fake.ops())


def test_canary_crash_is_explained_and_old_keeps_serving(fake: UkcFake) -> None:
    deploy(fake, FGA_OLD)
    new = Spec(openfga_image=FGA_NEW, postgres_image=PG)
    fake.faults.crash(Crash(new.canary, exit_code=243, after=0.05))
    with pytest.raises(DeployError) as err:
        deploy(fake, FGA_NEW)
    assert "243" in str(err.value) and "CGO_ENABLED=0" in str(err.value)
    old = Spec(openfga_image=FGA_OLD, postgres_image=PG)
    assert names(fake) == {old.postgres, old.app}
    assert fake.routable(next(iter(fake.groups.values())).fqdn)[0].name == old.app


def test_new_instance_out_of_memory_is_removed_with_a_sentence(fake: UkcFake) -> None:
    deploy(fake, FGA_OLD)
    new = Spec(openfga_image=FGA_NEW, postgres_image=PG)
    fake.faults.crash(Crash(new.app, stop_code=StopCode.pack(4, errno=12, init_level=6),
                            after=0.05))
    with pytest.raises(DeployError) as err:
        deploy(fake, FGA_NEW)
    assert "out of memory" in str(err.value) and "more memory" in str(err.value)
    assert new.app not in names(fake)


def test_idempotent_calls_retry_429_and_5xx_creates_do_not(fake: UkcFake) -> None:
    fake.faults.add(Fault("get_instances", status=429, retry_after="0"))
    fake.faults.add(Fault("get_volumes", status=503))
    out, platform, _ = deploy(fake, dry_run=True)
    assert platform.counters.retries == 2
    assert any("retry   list instances" in ln for ln in out.lines)
    fake.faults.add(Fault("create_volume", status=503))
    with pytest.raises(PlatformError, match="not idempotent"):
        deploy(fake)
    assert fake.ops().count("create_volume") == 1


def test_retries_are_bounded(fake: UkcFake) -> None:
    fake.faults.add(Fault("get_instances", status=500, times=10))
    with pytest.raises(PlatformError, match="after 3 attempt"):
        deploy(fake, dry_run=True, policy=RetryPolicy(attempts=3, base_delay=0.01))


def test_slow_answer_times_out_and_is_retried(fake: UkcFake) -> None:
    fake.faults.add(Fault("get_volumes", delay=1.5))
    _, platform, _ = deploy(fake, dry_run=True,
                            policy=RetryPolicy(call_timeout=0.5, base_delay=0.01))
    assert platform.counters.retries == 1


def test_partial_success_names_each_item(fake: UkcFake) -> None:
    deploy(fake, FGA_OLD)
    old = Spec(openfga_image=FGA_OLD, postgres_image=PG)
    fake.faults.add(Fault("stop_instances", fail_items=(old.app,)))
    with pytest.raises(ItemsFailed) as err:
        deploy(fake, FGA_NEW)
    assert old.app in str(err.value)
    assert old.app in names(fake)  # nothing deleted on that failure path


def test_nothing_printed_holds_a_secret(fake: UkcFake) -> None:
    fake.faults.crash(Crash("openfga-migrate-*", exit_code=1, console=(
        "error: " + " ".join(SECRETS.values()) + "\n")))
    out = Printer(list(SECRETS.values()), sink=lambda s: None)
    with pytest.raises(DeployError) as err:
        deploy(fake)
    printed = "\n".join(out.lines) + str(err.value)
    for secret in [*SECRETS.values(), *SECRETS["keys"].split(",")]:
        assert secret not in printed


def test_status_explains_every_stopped_instance_without_env(fake: UkcFake) -> None:
    from openfga_release.recipes.kraftcloud.deploy import status

    deploy(fake, FGA_OLD)
    spec = Spec(openfga_image=FGA_OLD, postgres_image=PG)
    app = next(i for i in fake.instances.values() if i.name == spec.app)
    with fake.cond:
        app.log("fatal: boom\n")
        fake._stopped(app, 1, None, StopCode.pack(5, init_level=7))
    out = Printer(list(SECRETS.values()), sink=lambda s: None)

    async def go() -> None:
        platform = Platform(fake.base_url, fake.token, log=out)
        try:
            await status(platform, spec, out)
        finally:
            await platform.aclose()
    asyncio.run(go())
    text = "\n".join(out.lines)
    assert f"{spec.app}: stopped" in text and "segmentation fault" in text
    assert "OPENFGA_DATASTORE_URI" not in text and SECRETS["app"] not in text


def test_a_stopped_instance_of_this_version_is_replaced_on_rerun(fake: UkcFake) -> None:
    deploy(fake, FGA_OLD)
    spec = Spec(openfga_image=FGA_OLD, postgres_image=PG)
    app = next(i for i in fake.instances.values() if i.name == spec.app)
    with fake.cond:
        fake._stopped(app, 3, 2, 0)
    out, _, _ = deploy(fake, FGA_OLD)
    assert any("left by an earlier failed run" in ln for ln in out.lines)
    assert next(i for i in fake.instances.values() if i.name == spec.app).state == "running"


def test_the_program_refuses_to_run_without_its_secrets(monkeypatch: pytest.MonkeyPatch,
                                                       capsys: pytest.CaptureFixture[str]
                                                       ) -> None:
    from openfga_release.recipes.kraftcloud.__main__ import main

    for var in ("UKC_TOKEN", "POSTGRES_APP_PASSWORD", "FGA_PRESHARED_KEYS"):
        monkeypatch.delenv(var, raising=False)
    argv = ["deploy", "--metro", "http://127.0.0.1:9", "--openfga-image", FGA_OLD,
            "--postgres-image", PG]
    assert main(argv) == 2 and "UKC_TOKEN is not set" in capsys.readouterr().out
    monkeypatch.setenv("UKC_TOKEN", "t0ken-value-xyz")
    assert main(argv) == 1
    printed = capsys.readouterr().out
    assert "POSTGRES_MIGRATOR_PASSWORD" in printed and "t0ken-value-xyz" not in printed


def test_a_same_named_instance_it_did_not_make_is_never_deleted(fake: UkcFake) -> None:
    """A user's own instance that happens to carry the deploy's PostgreSQL name: the deploy
    stops with a sentence and deletes nothing (only tagged instances are its own)."""
    deploy(fake, FGA_OLD)
    spec = Spec(openfga_image=FGA_OLD, postgres_image=PG)
    pg = next(i for i in fake.instances.values() if i.name == spec.postgres)
    with fake.cond:
        pg.tags = ["someone-else"]  # as if a person had made it by hand
    before = names(fake)
    with pytest.raises(DeployError, match="was not made by this deploy") as err:
        asyncio.run(_deploy_other_pg(fake))
    assert "nothing was deleted" in str(err.value)
    assert names(fake) == before


async def _deploy_other_pg(fake: UkcFake) -> None:
    out = Printer(list(SECRETS.values()), sink=lambda s: None)
    platform = Platform(fake.base_url, fake.token, RetryPolicy(base_delay=0.01), log=out)
    try:
        other = "index.unikraft.io/team/openfga-postgres@sha256:" + "b" * 64
        await Deploy(platform, Spec(openfga_image=FGA_OLD, postgres_image=other), SECRETS,
                     out, smoke=False).run()
    finally:
        await platform.aclose()
