"""The KraftCloud deploy end to end against the FAKE platform with real workloads.

The API is the contract fake (tests/support/ukc_fake.py: validated against the
official SDK's models); what runs in the instances is real
(tests/support/ukc_workloads.py): the OpenFGA release binaries and the
project's PostgreSQL start script with Debian's PostgreSQL, each instance in
its own network namespace where only the private network resolves
``<name>.internal``, the public name served by a TLS edge. The deploy program
itself runs as ``python -m openfga_release.recipes.kraftcloud`` in a namespace
that resolves only public names, with its secrets in env, as in its container.
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import httpx
import pytest
from openfga_release.recipes.kraftcloud.plan import Spec

from tests.support.gobuild_local import ensure_openfga
from tests.support.ukc_fake import Crash, UkcFake
from tests.support.ukc_workloads import Edge, Image, NetnsRunner, public_client, run_deploy

pytestmark = pytest.mark.integration

OLD, NEW = "v1.19.0", "v1.22.1"  # v1.21.0's dependencies are refused by the module proxy here
REG = "index.unikraft.io/fake"
FGA = {v: f"{REG}/openfga:{v}" for v in (OLD, NEW)}
FGA_BROKEN = f"{REG}/openfga:{NEW}-pie"  # a build the loader refuses (the fake's crash fault)
PG, PG_NEXT = f"{REG}/openfga-postgres:17.9", f"{REG}/openfga-postgres:17.9-rebuilt"
SECRETS = {
    "POSTGRES_MIGRATOR_PASSWORD": "Mig-r@tor:pw/1%x?k",
    "POSTGRES_APP_PASSWORD": "App#s3cret:p@ss/w%rd",
    "POSTGRES_READONLY_PASSWORD": "R3ad-0nly?p@ss:w/%d",
    "FGA_PRESHARED_KEYS": "e2e-key-0123456789abcdef,e2e-key-fedcba9876543210",
}
KEY = SECRETS["FGA_PRESHARED_KEYS"].split(",")[0]


@dataclass
class World:
    fake: UkcFake
    runner: NetnsRunner
    edge: Edge
    outputs: list[str] = field(default_factory=list)

    def deploy(self, command: str, image: str, pg: str = PG, **override: str
               ) -> subprocess.CompletedProcess[str]:
        proc = run_deploy(self.runner, self.fake, self.edge, command, openfga_image=image,
                          postgres_image=pg, secrets={**SECRETS, **override},
                          extra=("--migrate-timeout-s", "5"))
        self.outputs.append(proc.stdout + proc.stderr)
        return proc

    @property
    def fqdn(self) -> str:
        return next(g.fqdn for g in self.fake.groups.values() if g.name == "openfga")

    def client(self) -> httpx.Client:
        return public_client(self.edge, self.fqdn, timeout=10.0,
                             headers={"authorization": f"Bearer {KEY}"})


@pytest.fixture(scope="module")
def world() -> Iterator[World]:
    images = {FGA[v]: Image("openfga", ensure_openfga(v)) for v in (OLD, NEW)}
    images[FGA_BROKEN] = images[FGA[NEW]]
    images[PG] = images[PG_NEXT] = Image("postgres")
    runner = NetnsRunner(images)
    fake = UkcFake(runner, host=runner.bridge_ip, ip_prefix=runner.subnet, images=images).start()
    edge = Edge(fake, runner.bridge_ip, 443, runner.work)
    w = World(fake, runner, edge)
    try:
        yield w
    finally:
        edge.close()
        fake.close()
        runner.close()
        for out in w.outputs:  # whatever the deploy printed, in every test: no secret
            for secret in [*SECRETS.values(), *SECRETS["FGA_PRESHARED_KEYS"].split(","),
                           fake.token]:
                assert secret not in out
        assert fake.violations == []


def names(w: World) -> set[str]:
    return {i.name for i in w.fake.instances.values()}


def resolves(ns: str, name: str) -> bool:
    return subprocess.run(["ip", "netns", "exec", ns, "getent", "hosts", name],
                          capture_output=True).returncode == 0


def test_dry_run_then_deploy_migrate_smoke(world: World) -> None:
    dry = world.deploy("dry-run", FGA[OLD])
    assert dry.returncode == 0, dry.stdout + dry.stderr
    assert "create  volume" in dry.stdout and not world.fake.instances
    proc = world.deploy("deploy", FGA[OLD])
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "smoke through https://" in proc.stdout and "migrate openfga-migrate-" in proc.stdout
    spec = Spec(openfga_image=FGA[OLD], postgres_image=PG, allow_tags=True)
    assert names(world) == {spec.postgres, spec.app}
    pg = next(i for i in world.fake.instances.values() if i.name == spec.postgres)
    assert pg.group is None  # no public port
    assert not any(k.endswith("PASSWORD") for k in pg.env)  # passwords on first boot only
    # only the private network resolves <name>.internal; the deploy's namespace does not
    app = next(i for i in world.fake.instances.values() if i.name == spec.app)
    assert resolves(world.runner.namespaces[app.uuid], spec.postgres_host)
    assert not resolves(world.runner.client_namespace(), spec.postgres_host)
    assert resolves(world.runner.client_namespace(), world.fqdn)
    with world.client() as c:
        assert c.get("/healthz").json()["status"] == "SERVING"
        assert c.get("/stores").status_code == 200
    with public_client(world.edge, world.fqdn) as anon:
        assert anon.get("/stores").status_code == 401  # preshared keys


def _write_data(w: World) -> tuple[str, str]:
    model = {"schema_version": "1.1", "type_definitions": [
        {"type": "user"},
        {"type": "doc", "relations": {"viewer": {"this": {}}}, "metadata": {"relations": {
            "viewer": {"directly_related_user_types": [{"type": "user"}]}}}}]}
    with w.client() as c:
        store = c.post("/stores", json={"name": "survives"}).json()["id"]
        model_id = c.post(f"/stores/{store}/authorization-models", json=model).json()[
            "authorization_model_id"]
        r = c.post(f"/stores/{store}/write", json={"writes": {"tuple_keys": [
            {"user": "user:anne", "relation": "viewer", "object": "doc:plan"}]}})
        assert r.status_code == 200, r.text
    return store, model_id


def _check(c: httpx.Client, store: str) -> bool:
    r = c.post(f"/stores/{store}/check", json={"tuple_key": {
        "user": "user:anne", "relation": "viewer", "object": "doc:plan"}})
    return r.status_code == 200 and r.json().get("allowed") is True


def test_redeploy_on_the_same_volume_keeps_the_data(world: World) -> None:
    store, _ = _write_data(world)
    world.fake.requests.clear()
    again = world.deploy("deploy", FGA[OLD])  # nothing to do
    assert again.returncode == 0, again.stdout
    assert "create_instance" not in world.fake.ops()
    # a new PostgreSQL image: the instance is replaced, the volume (and the rows) stay
    proc = world.deploy("deploy", FGA[OLD], pg=PG_NEXT)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "update  postgres" in proc.stdout
    pg = next(i for i in world.fake.instances.values() if i.image == PG_NEXT)
    assert not any(k.endswith("PASSWORD") for k in pg.env)  # a later boot needs none
    with world.client() as c:
        assert _check(c, store)
    world.store = store  # type: ignore[attr-defined]


def test_upgrade_under_load_without_a_failed_check(world: World) -> None:
    store = getattr(world, "store", None) or _write_data(world)[0]
    done, results = threading.Event(), {"ok": 0, "failed": 0, "errors": []}

    def load() -> None:
        with world.client() as c:
            while not done.is_set():
                try:
                    ok = _check(c, store)
                except httpx.HTTPError as exc:
                    ok = False
                    results["errors"].append(repr(exc))  # type: ignore[union-attr]
                results["ok" if ok else "failed"] += 1  # type: ignore[operator]
                time.sleep(0.02)

    t = threading.Thread(target=load)
    t.start()
    try:
        proc = world.deploy("deploy", FGA[NEW], pg=PG_NEXT)
    finally:
        time.sleep(1.0)
        done.set()
        t.join(30)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    new = Spec(openfga_image=FGA[NEW], postgres_image=PG_NEXT, allow_tags=True)
    assert names(world) == {new.postgres, new.app}
    assert "canary" in proc.stdout and "drained and removed" in proc.stdout
    assert results["failed"] == 0, results
    assert int(results["ok"]) > 50  # type: ignore[call-overload]


def test_a_crashing_new_version_is_explained_and_the_old_keeps_serving(world: World) -> None:
    store = getattr(world, "store", None) or _write_data(world)[0]
    broken = Spec(openfga_image=FGA_BROKEN, postgres_image=PG_NEXT, allow_tags=True)
    world.fake.faults.crash(Crash(broken.canary, exit_code=243, after=0.1))
    before = names(world)
    proc = world.deploy("deploy", FGA_BROKEN, pg=PG_NEXT)
    assert proc.returncode == 1
    assert "exited 243" in proc.stdout and "base-compat could not load the binary" in proc.stdout
    assert "CGO_ENABLED=0" in proc.stdout
    assert names(world) == before  # canary removed, nothing else touched
    with world.client() as c:
        assert _check(c, store)


def test_a_failing_migration_is_explained_and_stops_the_deploy(world: World) -> None:
    """A real failure, not an injected one: the migrator's password is wrong."""
    store = getattr(world, "store", None) or _write_data(world)[0]
    before = names(world)
    wrong = "Wr0ng-migrator:pw@x"
    proc = world.deploy("deploy", FGA_BROKEN, pg=PG_NEXT, POSTGRES_MIGRATOR_PASSWORD=wrong)
    assert proc.returncode == 1, proc.stdout
    assert "migrations failed" in proc.stdout
    assert "refused the password for role openfga_migrator" in proc.stdout
    assert wrong not in proc.stdout + proc.stderr
    assert names(world) == before  # the one-shot instance removed, nothing else touched
    with world.client() as c:
        assert _check(c, store)
