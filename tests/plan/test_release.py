"""Plan tests for publish and release, offline on the real SDK.

The release awaits a few leaves (the binaries' ``sync``, the images entry's
stdout, the publish run's exit code and stdout): these tests answer only those,
record the order they are asked in, and read the real plan around them.
"""

from __future__ import annotations

import json
from typing import Any

import anyio
import dagger
import openfga_release
import pytest
from dagger import dag
from openfga_release import registry as reg
from openfga_release import release as rel_wiring
from openfga_release.recipes import postgres as pg
from openfga_release.recipes import publish as pub
from openfga_release.recipes import release as rel
from openfga_release.recipes import sign
from openfga_release.recipes.errors import InputError

from tests.support import plan

PASSWORD = "R3gistry/p@ss#word"
KEY = "-----BEGIN ENCRYPTED SIGSTORE PRIVATE KEY-----\nc2VjcmV0\n-----END-----"
KEY_PASSWORD = "k3y-pa55"
DIGEST = "sha256:" + "c" * 64
SECRETS = (PASSWORD, KEY, KEY_PASSWORD)


def registry(**kw: Any) -> reg.Registry:
    fields = {"address": "ghcr.io", "namespace": "acme", "username": "ci-bot",
              "password": dag.set_secret("registry-password", PASSWORD), **kw}  # fmt: skip
    return reg.Registry(**fields)


def fake_images() -> dict[str, Any]:
    out = {}
    for row in pub.MATRIX:
        repo = f"ghcr.io/acme/{row.repository}"
        out[row.name] = {
            "repository": repo, "digest": DIGEST, "digest_ref": f"{repo}@{DIGEST}",
            "platforms": {p: DIGEST for p in row.platforms}, "tags": ["v1.22.1"],
        }  # fmt: skip
    return out


class Recorder:
    """Answers the awaited leaves; records what was asked, in order."""

    def __init__(self, mp: pytest.MonkeyPatch) -> None:
        self.events: list[str] = []
        self.containers: list[dagger.Container] = []
        rec = self

        async def file_sync(file: dagger.File) -> dagger.File:
            arch = plan.chain(file)[-1].args["path"].rpartition("-")[2]  # see fake_binary
            rec.events.append(f"start {arch}")
            await anyio.sleep(0.01)
            rec.events.append(f"done {arch}")
            return file

        async def stdout(ctr: dagger.Container) -> str:
            rec.containers.append(ctr)
            argv = plan.execs(ctr)[-1]
            rec.events.append(" ".join(argv[:4]))
            if "images" in argv:
                return json.dumps(fake_images())
            if "publish" in argv:
                return json.dumps({"images": {n: {"digest_ref": e["digest_ref"], "pushed": True}
                                              for n, e in fake_images().items()}})  # fmt: skip
            raise AssertionError(f"unexpected stdout of {argv}")

        async def exit_code(ctr: dagger.Container) -> int:
            rec.containers.append(ctr)
            return 0

        mp.setattr(dagger.File, "sync", file_sync)
        mp.setattr(dagger.Container, "stdout", stdout)
        mp.setattr(dagger.Container, "exit_code", exit_code)


def fake_binary(arch: str) -> dagger.File:
    # The file name carries the arch so the recorder can say which build it awaits.
    return dag.directory().with_new_file(f"openfga-{arch}", arch).file(f"openfga-{arch}")


def inputs(e2e_events: list[str] | None = None) -> rel_wiring.Inputs:
    async def e2e() -> None:
        if e2e_events is not None:
            e2e_events.append("e2e")

    def image(name: str):
        return lambda arch: dag.container(platform=dagger.Platform(f"linux/{arch}")).with_label(
            "image", name
        )

    return rel_wiring.Inputs(
        version="v1.22.1",
        date="2026-10-28T12:53:36Z",
        binary=fake_binary,
        images={row.name: image(row.name) for row in pub.MATRIX},
        e2e=e2e,
    )


def secret_free(obj: Any) -> None:
    """No secret in any string of the plan, except where it is made a Secret (setSecret)."""
    for step in plan.walk(obj):
        if step.name == "setSecret":
            continue
        for text in plan.strings_in(step.args):
            for secret in SECRETS:
                assert secret not in text, step


# -- Registry ------------------------------------------------------------------------------


def test_registry_validates_before_any_container() -> None:
    with pytest.raises(InputError, match="scheme"):
        registry(address="https://ghcr.io").request("v1.22.1", False, False, False)
    with pytest.raises(InputError, match="namespace"):
        registry(namespace="Acme").request("v1.22.1", False, False, False)
    with pytest.raises(InputError, match="vMAJOR"):
        registry().request("1.22.1", False, False, False)
    assert registry().repositories() == ["ghcr.io/acme/openfga", "ghcr.io/acme/openfga-postgres"]


def publish_ctr(**kw: Any) -> dagger.Container:
    r = registry()
    layouts = {"openfga": dag.directory(), "postgres": dag.directory()}
    return reg.publish_container(
        reg.tools(), r.request("v1.22.1", False, False, True), layouts, r.username, r.password,
        signing_key=dag.set_secret("cosign-key", KEY),
        signing_password=dag.set_secret("cosign-password", KEY_PASSWORD), **kw,
    )  # fmt: skip


def test_credentials_reach_the_publish_run_only_as_secrets() -> None:
    ctr = publish_ctr()
    secret_vars = {s.args["name"] for s in plan.chain(ctr) if s.name == "withSecretVariable"}
    assert secret_vars == {rel.PASSWORD_ENV, sign.KEY_ENV, sign.PASSWORD_ENV}
    env = plan.env_of(ctr)
    assert env[rel.USERNAME_ENV] == "ci-bot"
    assert env["DOCKER_CONFIG"] == reg.DOCKER_CONFIG
    temps = [s.args["path"] for s in plan.chain(ctr) if s.name == "withMountedTemp"]
    assert temps == [reg.DOCKER_CONFIG]  # crane's login file: a tmpfs, never a layer
    secret_free(ctr)
    assert plan.execs(ctr)[-1] == [
        "python3", "-m", "openfga_release.recipes.release", "publish",
        "--request", "/in/request.json",
    ]  # fmt: skip


def test_every_publish_run_is_fresh() -> None:
    a, b = plan.env_of(publish_ctr()), plan.env_of(publish_ctr())
    assert a[reg.RUN_ID_ENV] != b[reg.RUN_ID_ENV]


def test_crane_and_cosign_are_built_at_the_pinned_versions() -> None:
    installs = [x for x in plan.execs(reg.tools()) if x[:2] == ["go", "install"]]
    assert [x[-1] for x in installs] == [
        f"{pub.CRANE_PACKAGE}@{pub.CRANE_VERSION}",
        f"{sign.COSIGN_PACKAGE}@{sign.COSIGN_VERSION}",
    ]


def test_username_without_password_and_signing_without_key_are_refused() -> None:
    layouts = {"openfga": dag.directory()}
    req = registry().request("v1.22.1", False, False, False)
    with pytest.raises(InputError, match="--password"):
        reg.publish_container(reg.tools(), req, layouts, "ci-bot", None)
    req = registry().request("v1.22.1", False, False, True)
    with pytest.raises(InputError, match="signing-key"):
        reg.publish_container(reg.tools(), req, layouts, "", None)


@pytest.fixture(scope="module")
def registration():
    mp = pytest.MonkeyPatch()

    async def fake_id(self):
        return self

    mp.setattr(dagger.Module, "id", fake_id)
    from dagger.mod import default_module

    assert openfga_release.OpenfgaRelease  # the main object must be known to register

    try:
        yield anyio.run(default_module()._typedefs)
    finally:
        mp.undo()


def test_publish_is_never_cached(registration) -> None:
    chains = {}
    for step in plan.walk(registration):
        if step.name == "withFunction":
            chain = plan.chain(step.args["function"])
            name = next(s.args["name"] for s in chain if s.name == "function")
            chains[name] = chain
    policies = [s.args for s in chains["publish"] if s.name == "withCachePolicy"]
    assert [str(getattr(p["policy"], "value", p["policy"])).upper() for p in policies] == ["NEVER"]


# -- the release -----------------------------------------------------------------------------


def test_both_arch_builds_start_before_either_is_awaited(monkeypatch) -> None:
    rec = Recorder(monkeypatch)
    e2e: list[str] = []
    anyio.run(lambda: rel_wiring.build_all(inputs(e2e)))
    starts = [i for i, e in enumerate(rec.events) if e.startswith("start")]
    dones = [i for i, e in enumerate(rec.events) if e.startswith("done")]
    assert len(starts) == 2 and len(dones) == 2
    assert max(starts) < min(dones), rec.events
    assert {rec.events[i] for i in starts} == {"start amd64", "start arm64"}
    assert e2e == ["e2e"]


def test_dry_run_builds_every_artifact_and_pushes_nothing(monkeypatch) -> None:
    rec = Recorder(monkeypatch)
    dist, _ = anyio.run(lambda: rel_wiring.release(inputs(), None, dry_run=True))
    assert not any("publish" in e for e in rec.events), rec.events
    everything = [dist, *rec.containers]
    for obj in everything:
        for argv in plan.execs(obj):
            assert "crane" not in argv and "cosign" not in argv and "publish" not in argv
        assert not plan.calls(obj, "withSecretVariable")
        assert not plan.calls(obj, "publish")
    files = [s.args["path"] for s in plan.calls(dist, "withFile")]
    assert files == ["openfga_1.22.1_linux_amd64", "openfga_1.22.1_linux_arm64"]
    jobs_file = next(
        s.args["contents"] for s in plan.walk(dist)
        if s.name == "withNewFile" and s.args["path"] == "/in/sbom-jobs.json"
    )  # fmt: skip
    sbom_outputs = [job[job.index("--output") + 1] for job in json.loads(jobs_file)]
    assert ["python3", "/tools/sbom.py", "--batch", "/in/sbom-jobs.json"] in plan.execs(dist)
    assert sorted(s.rsplit("/", 1)[1] for s in sbom_outputs) == sorted(
        [rel.binary_sbom_name("v1.22.1", p) for p in pub.PLATFORMS]
        + [rel.image_sbom_name(n, "v1.22.1", p) for n in ("openfga", "postgres")
           for p in pub.PLATFORMS]
    )  # fmt: skip
    final = plan.execs(dist)[-1]
    assert final[3] == "finalize" and "--published" not in final
    # The dry run names a registry that cannot resolve: nothing can leave by mistake.
    assert any(rel_wiring.DRY_RUN_ADDRESS in " ".join(a) for a in plan.execs(rec.containers[0]))


def test_each_image_is_one_multi_platform_export(monkeypatch) -> None:
    layouts = rel_wiring.layouts(inputs())
    for name, layout in layouts.items():
        tarballs = plan.calls(layout, "asTarball")
        assert len(tarballs) == 1
        variants = tarballs[0].args["platformVariants"]
        platforms = [
            s.args["platform"] for v in variants for s in plan.chain(v) if s.name == "container"
        ]
        assert [str(p) for p in platforms] == ["linux/amd64", "linux/arm64"], name


def test_release_publishes_signs_and_keeps_secrets_out_of_the_plan(monkeypatch) -> None:
    rec = Recorder(monkeypatch)
    dist, images = anyio.run(
        lambda: rel_wiring.release(
            inputs(), registry(), dry_run=False, latest=True,
            signing_key=dag.set_secret("cosign-key", KEY),
            signing_password=dag.set_secret("cosign-password", KEY_PASSWORD),
        )
    )  # fmt: skip
    publish_runs = [c for c in rec.containers if "publish" in plan.execs(c)[-1]]
    assert publish_runs, rec.events
    request_files = [s.args["contents"] for s in plan.calls(publish_runs[0], "withNewFile")
                     if s.args["path"] == "/in/request.json"]  # fmt: skip
    request = json.loads(request_files[0])
    assert request["sign"] is True and request["latest"] is True
    assert set(request["sboms"]) == {"openfga", "postgres"}
    assert images["openfga"]["digest_ref"] == f"ghcr.io/acme/openfga@{DIGEST}"
    assert plan.execs(dist)[-1][-1] == "--published"
    for obj in [dist, *rec.containers]:
        secret_free(obj)


def test_publishing_release_without_registry_is_refused() -> None:
    with pytest.raises(InputError, match="registry"):
        anyio.run(lambda: rel_wiring.release(inputs(), None, dry_run=False))


def test_keyless_signing_takes_the_ci_oidc_token_as_a_secret() -> None:
    r = registry()
    token = "eyJhbGciOiJSUzI1NiJ9.oidc-token-value"
    ctr = reg.publish_container(
        reg.tools(), r.request("v1.22.1", False, False, True), {"openfga": dag.directory()},
        r.username, r.password, oidc_token=dag.set_secret("oidc", token),
    )  # fmt: skip
    secret_vars = {s.args["name"] for s in plan.chain(ctr) if s.name == "withSecretVariable"}
    assert secret_vars == {rel.PASSWORD_ENV, sign.ID_TOKEN_ENV}
    request = json.loads(
        next(
            s.args["contents"]
            for s in plan.chain(ctr)
            if s.name == "withNewFile" and s.args["path"] == "/in/request.json"
        )
    )
    assert request["keyless"] is True and request["sign"] is True
    for step in plan.walk(ctr):
        if step.name != "setSecret":
            assert all(token not in t for t in plan.strings_in(step.args))
    with pytest.raises(InputError, match="not both"):
        reg.publish_container(
            reg.tools(), r.request("v1.22.1", False, False, True), {"openfga": dag.directory()},
            "", None, signing_key=dag.set_secret("k", KEY), signing_password=dag.set_secret(
                "p", KEY_PASSWORD), oidc_token=dag.set_secret("oidc", token),
        )  # fmt: skip


def test_inputs_from_the_main_objects_knobs_validate_first() -> None:
    built: list[str] = []

    def build(arch: str):
        built.append(arch)
        return None  # never used: only the validation order is under test here

    common = {"version": "v1.22.1", "build": build, "names": pg.Names(), "e2e": None}
    with pytest.raises(InputError, match="--date"):
        rel_wiring.inputs(date=None, from_source=True, postgres_config=dag.directory(), **common)
    with pytest.raises(InputError, match="postgres-config"):
        rel_wiring.inputs(date=None, from_source=False, postgres_config=None, **common)
    got = rel_wiring.inputs(date=None, from_source=False, postgres_config=dag.directory(), **common)
    assert built == ["amd64", "arm64"]  # both arches' inputs checked before anything runs
    assert got.date == "2026-10-28T12:53:36Z"  # the pinned release's tag date
    postgres = got.images["postgres"]("arm64")
    assert [str(s.args["platform"]) for s in plan.chain(postgres) if s.name == "container"] == [
        "linux/arm64"
    ]
    with pytest.raises(InputError, match="scheme"):
        rel_wiring.registry("https://ghcr.io", "", "", None, "golang:1.26.8-bookworm")
