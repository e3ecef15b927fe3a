"""The FAKE platform API (tests/support/ukc_fake.py) against the official SDK.

Proves the fake is a fair stand-in: the SDK's own requests pass its strict
validation and its answers parse as the SDK's models; malformed or unknown
fields are refused; the documented odd corners and the injected faults behave.
"""

from __future__ import annotations

import asyncio
import base64
import json
from collections.abc import Iterator

import httpx
import pytest
from unikraft_cloud import UnikraftCloud
from unikraft_cloud.api.platform import models_gen as m
from unikraft_cloud.core.errors import RateLimitError

from tests.support.ukc_fake import Crash, Fault, UkcFake


@pytest.fixture
def fake() -> Iterator[UkcFake]:
    with UkcFake() as f:
        yield f
    assert f.violations == []  # every answer it sent matched the SDK's response models


def run(coro):  # type: ignore[no-untyped-def]
    return asyncio.run(coro)


async def _client(fake: UkcFake) -> UnikraftCloud:
    return UnikraftCloud(base_url=fake.base_url, token=fake.token)


def raw(fake: UkcFake, method: str, path: str, body: object = None,
        token: str | None = None) -> httpx.Response:
    headers = {"authorization": f"Bearer {token or fake.token}"}
    return httpx.request(method, fake.base_url + path, headers=headers,
                         content=None if body is None else json.dumps(body))


def test_the_fake_says_it_is_a_fake(fake: UkcFake) -> None:
    resp = raw(fake, "GET", "/v1/instances")
    assert "FAKE" in resp.headers["x-fake"]


def test_unknown_field_is_refused(fake: UkcFake) -> None:
    resp = raw(fake, "POST", "/v1/instances", {"name": "x", "image": "a:b", "imagee": "typo"})
    assert resp.status_code == 400
    assert "imagee" in resp.json()["message"]
    nested = raw(fake, "POST", "/v1/instances",
                 {"name": "x", "image": "a:b", "volumes": [{"name": "v", "at": "/v", "rw": 1}]})
    assert nested.status_code == 400 and "volumes[0].rw" in nested.json()["message"]


def test_missing_required_field_and_wrong_type_are_refused(fake: UkcFake) -> None:
    assert raw(fake, "POST", "/v1/services", {"name": "g"}).status_code == 400  # no services
    assert raw(fake, "POST", "/v1/volumes", {"name": "v", "size_mb": "big"}).status_code == 400
    assert raw(fake, "GET", "/v1/instances/x/wait", None).status_code == 400  # body required


def test_wrong_token_and_unknown_route(fake: UkcFake) -> None:
    assert raw(fake, "GET", "/v1/instances", token="nope").status_code == 401
    assert raw(fake, "GET", "/v1/nothing").status_code == 404


def test_sdk_round_trip_envelope_lists_and_states(fake: UkcFake) -> None:
    async def go() -> None:
        async with await _client(fake) as ukc:
            api = ukc.api.platform
            vol = await api.volumes.create_volume(
                body=m.CreateVolumeRequest(name="data", size_mb=64))
            assert vol.status == "success" and len(vol.data.volumes) == 1
            made = await api.instances.create_instance(body=m.CreateInstanceRequest(
                name="db", image="u/postgres:1", volumes=[
                    m.CreateInstanceRequestVolume(name="data", at="/volume")]))
            inst = made.data.instances[0]
            assert inst.private_fqdn == "db.internal"
            waited = await api.instances.wait_instance_by_uuid(
                inst.uuid, body=m.WaitInstanceByUUIDRequestBody(state="running", timeout_s=5))
            assert waited.data.instances[0].state == "running"
            logs = await api.instances.get_instance_logs_by_uuid(
                inst.uuid, body=m.GetInstanceLogsByUUIDRequestBody(offset=-4096))
            text = base64.b64decode(logs.data.instances[0].output).decode()
            assert "FAKE boot of db" in text
            # read-write volumes mount on one instance at a time
            with pytest.raises(Exception, match="attached to db"):
                await api.instances.create_instance(body=m.CreateInstanceRequest(
                    name="db2", image="u/postgres:1", volumes=[
                        m.CreateInstanceRequestVolume(name="data", at="/volume")]))
            stopped = await api.instances.stop_instances(
                body=[m.StopInstancesRequestItem(name="db")])
            assert stopped.data.instances[0].previous_state == "running"
            got = (await api.instances.get_instance_by_uuid(inst.uuid)).data.instances[0]
            assert got.state == "stopped" and got.stop_reason == 15  # -UPAK
    run(go())
    # GET with a JSON body, as the SDK sends wait and logs
    gets = [(p, b) for meth, p, b in fake.requests if meth == "GET" and b is not None]
    assert any(p.endswith("/wait") for p, _ in gets) and any(p.endswith("/log") for p, _ in gets)


def test_partial_success_inside_http_200(fake: UkcFake) -> None:
    async def go() -> m.StopInstancesResponse:
        async with await _client(fake) as ukc:
            api = ukc.api.platform
            for n in ("a", "b"):
                await api.instances.create_instance(body=m.CreateInstanceRequest(
                    name=n, image="u/x:1"))
            fake.faults.add(Fault("stop_instances", fail_items=("b",)))
            return await api.instances.stop_instances(
                body=[m.StopInstancesRequestItem(name="a"), m.StopInstancesRequestItem(name="b")])
    resp = run(go())
    assert resp.status == "partial_success"
    assert [i.status for i in resp.data.instances] == ["success", "error"]


def test_429_with_retry_after_reaches_the_sdk_as_rate_limit(fake: UkcFake) -> None:
    fake.faults.add(Fault("get_instances", status=429, retry_after="1"))

    async def go() -> None:
        async with await _client(fake) as ukc:
            with pytest.raises(RateLimitError):
                await ukc.api.platform.instances.get_instances()
    run(go())
    resp = raw(fake, "GET", "/v1/instances")
    assert resp.status_code == 200  # the fault was used once


def test_crash_with_a_chosen_stop_code(fake: UkcFake) -> None:
    from openfga_release.recipes.kraftcloud.crash import StopCode
    code = StopCode.pack(4, errno=12, init_level=6)
    fake.faults.crash(Crash("boom", stop_code=code))

    async def go() -> m.Instance:
        async with await _client(fake) as ukc:
            api = ukc.api.platform
            made = await api.instances.create_instance(body=m.CreateInstanceRequest(
                name="boom", image="u/x:1"))
            uuid = made.data.instances[0].uuid
            await api.instances.wait_instance_by_uuid(
                uuid, body=m.WaitInstanceByUUIDRequestBody(state="stopped", timeout_s=5))
            return (await api.instances.get_instance_by_uuid(uuid)).data.instances[0]
    got = run(go())
    assert got.state == "stopped" and got.stop_reason == 1 and got.stop_code == code


def test_a_locked_volume_cannot_be_deleted(fake: UkcFake) -> None:
    async def go() -> m.DeleteVolumesResponse:
        async with await _client(fake) as ukc:
            api = ukc.api.platform
            await api.volumes.create_volume(body=m.CreateVolumeRequest(name="d", size_mb=8))
            await api.volumes.update_volumes(body=[m.UpdateVolumesRequestItem(
                name="d", prop="delete_lock", op="set", value=True)])
            return await api.volumes.delete_volumes(body=[m.NameOrUUID(name="d")])
    resp = run(go())
    assert resp.status == "error" and "delete_lock" in (resp.data.volumes[0].message or "")
