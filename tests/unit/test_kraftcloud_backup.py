"""The KraftCloud one-shot backup against the FAKE platform (no workloads).

The fake validates every request against the SDK's models; its ScriptedRunner
makes the backup argv exit 0, and a scripted Crash makes it fail with a chosen
exit code or kernel stop. The backup itself (pg_dump to S3) is proven for real
in tests/real/test_backup.py; here: the instance the deploy makes, what it
prints, and what it deletes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from typing import Any

import pytest
from openfga_release.recipes import backup as bk
from openfga_release.recipes.errors import InputError
from openfga_release.recipes.kraftcloud.api import Platform
from openfga_release.recipes.kraftcloud.crash import StopCode
from openfga_release.recipes.kraftcloud.deploy import DeployError, Printer, backup
from openfga_release.recipes.kraftcloud.plan import BACKUP_SECRET_ENV, BackupJob, Spec
from openfga_release.recipes.kraftcloud.retry import RetryPolicy

from tests.support.ukc_fake import Crash, UkcFake
from tests.unit.test_kraftcloud_deploy import FGA_OLD, PG, SECRETS, deploy, names

BACKUP_IMAGE = "index.unikraft.io/team/openfga-backup@sha256:" + "c" * 64
BACKUP_SECRETS = {"readonly": SECRETS["readonly"], "s3_access_key": "AKIDbackup12345",
                  "s3_secret_key": "s3-Secret/Value+9"}
ALL_SECRETS = [*SECRETS.values(), *SECRETS["keys"].split(","), *BACKUP_SECRETS.values()]
SPEC = Spec(openfga_image=FGA_OLD, postgres_image=PG)


@pytest.fixture
def fake() -> Iterator[UkcFake]:
    with UkcFake() as f:
        yield f
    assert f.violations == []


def job(**kw: Any) -> BackupJob:
    kw.setdefault("name", "openfga")
    kw.setdefault("image", BACKUP_IMAGE)
    kw.setdefault("endpoint", "https://s3.eu-west-1.amazonaws.com")
    kw.setdefault("bucket", "openfga-backups")
    kw.setdefault("prefix", "prod")
    return BackupJob(**kw)


def run(fake: UkcFake, j: BackupJob | None = None,
        secrets: dict[str, str] | None = None) -> Printer:
    out = Printer([*ALL_SECRETS, fake.token], sink=lambda s: None)

    async def go() -> None:
        platform = Platform(fake.base_url, fake.token, RetryPolicy(base_delay=0.01), log=out)
        try:
            await backup(platform, j or job(), BACKUP_SECRETS if secrets is None else secrets,
                         out)
        finally:
            await platform.aclose()
    try:
        asyncio.run(go())
    except DeployError as exc:
        exc.add_note("\n".join(out.lines))  # what was printed, for the assertions below
        raise
    return out


def created(fake: UkcFake, name: str) -> list[dict[str, Any]]:
    return [b for meth, p, b in fake.requests
            if meth == "POST" and p == "/v1/instances" and b["name"] == name]


def deleted(fake: UkcFake) -> list[str]:
    return [item["name"] for meth, p, b in fake.requests
            if meth == "DELETE" and p == "/v1/instances" for item in b]


def assert_no_secret(text: str) -> None:
    for secret in ALL_SECRETS:
        assert secret not in text


def test_the_backup_runs_once_on_the_private_network_and_is_removed(fake: UkcFake) -> None:
    deploy(fake)
    before = names(fake)
    out = run(fake)
    [body] = created(fake, "openfga-backup")
    assert body["image"] == BACKUP_IMAGE  # by digest
    assert body["restart_policy"] == "never" and "service_group" not in body
    assert "scale_to_zero" not in body and "volumes" not in body
    assert body["args"] == bk.BACKUP_ARGS
    env = body["env"]
    assert env["BACKUP_PG_HOST"] == f"{SPEC.postgres}.internal"
    assert env["BACKUP_PG_USER"] == "openfga_readonly" and env["BACKUP_PG_SSLMODE"] == "require"
    assert env["BACKUP_S3_BUCKET"] == "openfga-backups" and env["BACKUP_S3_PREFIX"] == "prod"
    # the secrets only in the instance's env, under the names the backup CLI reads
    assert env[bk.PASSWORD_ENV] == SECRETS["readonly"]
    assert env[bk.ACCESS_KEY_ENV] == BACKUP_SECRETS["s3_access_key"]
    assert env[bk.SECRET_KEY_ENV] == BACKUP_SECRETS["s3_secret_key"]
    secret_free = {k: v for k, v in body.items() if k != "env"}
    assert_no_secret(repr(secret_free))
    assert set(body["tags"]) >= {"openfga-release", "openfga-release.name=openfga",
                                 "openfga-release.role=backup"}
    assert names(fake) == before  # the one-shot is gone, nothing else touched
    assert deleted(fake)[-1:] == ["openfga-backup"]
    text = "\n".join(out.lines)
    assert "backup| " in text and "exit 0, removed" in text
    assert_no_secret(text)
    assert "AWS_SECRET_ACCESS_KEY" not in text and "PGPASSWORD" not in text  # env never printed


def test_a_failing_backup_stops_with_a_sentence_and_removes_only_its_instance(
        fake: UkcFake) -> None:
    deploy(fake)
    before = names(fake)
    n_deleted = len(deleted(fake))
    fake.faults.crash(Crash("openfga-backup", exit_code=1, console=(
        f"using {BACKUP_SECRETS['s3_access_key']} / {BACKUP_SECRETS['s3_secret_key']}\n"
        "error: the object store refused the credentials (InvalidAccessKeyId): check "
        f"AWS_ACCESS_KEY_ID postgres://openfga_readonly:{SECRETS['readonly']}@x.internal\n")))
    with pytest.raises(DeployError) as err:
        run(fake)
    msg = str(err.value)
    assert msg.startswith("the backup failed (exit code 1")
    assert "refused the credentials" in msg and "openfga-backup was removed" in msg
    assert_no_secret(msg + "\n".join(err.value.__notes__))
    assert names(fake) == before  # PostgreSQL and OpenFGA untouched
    assert deleted(fake)[n_deleted:] == ["openfga-backup"]
    assert not any(op.startswith("delete_volume") for op in fake.ops())


def test_a_kernel_crash_of_the_backup_is_explained(fake: UkcFake) -> None:
    deploy(fake)
    fake.faults.crash(Crash("openfga-backup", stop_code=StopCode.pack(4, errno=12, init_level=6),
                            after=0.05))
    with pytest.raises(DeployError, match="out of memory") as err:
        run(fake)
    assert "more memory" in str(err.value)
    assert "openfga-backup" not in names(fake)


def test_a_leftover_of_its_own_is_replaced(fake: UkcFake) -> None:
    deploy(fake)

    async def leave() -> None:  # an interrupted run's instance, tagged as the tool's
        platform = Platform(fake.base_url, fake.token)
        try:
            await platform.create_instance({"name": "openfga-backup", "image": BACKUP_IMAGE,
                                            "tags": job().tags()})
        finally:
            await platform.aclose()
    asyncio.run(leave())
    out = run(fake)
    assert any("left by an interrupted run" in ln for ln in out.lines)
    assert len(created(fake, "openfga-backup")) == 2
    assert "openfga-backup" not in names(fake)


def test_a_same_named_instance_it_did_not_make_is_never_deleted(fake: UkcFake) -> None:
    deploy(fake)

    async def theirs() -> None:
        platform = Platform(fake.base_url, fake.token)
        try:
            await platform.create_instance({"name": "openfga-backup", "image": BACKUP_IMAGE,
                                            "tags": ["someone-else"]})
        finally:
            await platform.aclose()
    asyncio.run(theirs())
    before = names(fake)
    with pytest.raises(DeployError, match="was not made by this deploy") as err:
        run(fake)
    assert "nothing was deleted" in str(err.value)
    assert names(fake) == before and "openfga-backup" not in deleted(fake)
    assert len(created(fake, "openfga-backup")) == 1  # only theirs


def test_no_database_no_backup_instance(fake: UkcFake) -> None:
    with pytest.raises(DeployError, match="deploy first"):
        run(fake)
    assert "create_instance" not in fake.ops()


def test_missing_secrets_fail_before_any_request(fake: UkcFake) -> None:
    with pytest.raises(InputError, match=BACKUP_SECRET_ENV["s3_secret_key"]) as err:
        run(fake, secrets={**BACKUP_SECRETS, "s3_secret_key": ""})
    assert fake.ops() == []
    assert_no_secret(str(err.value))


@pytest.mark.parametrize(("kw", "words"), [
    ({"image": "index.unikraft.io/team/openfga-backup:1.0"}, "not pinned by digest"),
    ({"endpoint": "https://user:pw@s3.example.com"}, "credentials go"),
    ({"endpoint": "http://s3.example.com"}, "https"),
    ({"keep": 0}, "keep at least 1"),
    ({"name": "Bad_Name"}, "DNS label"),
])
def test_bad_arguments_are_refused_before_anything_runs(kw: dict[str, Any], words: str) -> None:
    with pytest.raises(InputError, match=words):
        job(**kw)


def test_the_cli_runs_the_backup(fake: UkcFake, monkeypatch: pytest.MonkeyPatch,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    from openfga_release.recipes.kraftcloud.__main__ import main

    deploy(fake)
    monkeypatch.setenv("UKC_TOKEN", fake.token)
    for key, var in BACKUP_SECRET_ENV.items():
        monkeypatch.setenv(var, BACKUP_SECRETS[key])
    argv = ["backup", "--metro", fake.base_url, *job().cli_args()]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "openfga-backup: exit 0, removed" in printed
    assert_no_secret(printed)
    assert "openfga-backup" not in names(fake)


def test_a_backup_that_does_not_stop_in_time_is_stopped_and_removed(
        fake: UkcFake, monkeypatch: pytest.MonkeyPatch) -> None:
    deploy(fake)

    async def never(self: Platform, uuid: str, state: str, seconds: float) -> str:
        return "running"  # as if the timeout passed with the backup still running
    fake.faults.crash(Crash("openfga-backup", exit_code=0, after=0.2))  # runs a while, then ends
    monkeypatch.setattr(Platform, "await_state", never)
    with pytest.raises(DeployError, match="did not stop within 1800s") as err:
        run(fake)
    assert "stopped and removed" in str(err.value)
    assert "openfga-backup" not in names(fake)
    assert "stop_instances" in fake.ops()
