"""The platform calls the deploy makes, through the official SDK's plumbing.

Plain module; imports ``unikraft_cloud`` (pinned in the deploy's container)
lazily, so ``plan``/``crash`` stay importable without it. Every call:

* builds its body with the SDK's request model (``model_validate`` of the
  plan's dict: a typo in a field fails here, not at the API);
* has a timeout (the SDK's default has no read timeout);
* is retried only if idempotent, per :mod:`.retry` (Retry-After read from the
  response headers by an httpx hook, since the SDK's error does not keep them);
* checks every item of the envelope: ``partial_success`` arrives inside HTTP
  200, so each failed item is reported by name (:class:`ItemsFailed`).

``round_trips`` counts HTTP requests sent (retries included) for benchmarks.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import httpx

from ..errors import StepError
from .plan import Seen, State
from .retry import RetryPolicy, parse_retry_after, retryable

T = TypeVar("T")


class PlatformError(StepError):
    """A platform call failed (after the retries it was allowed)."""

    def __init__(self, sentence: str, status: int | None = None) -> None:
        super().__init__(sentence)
        self.status = status


class ItemsFailed(PlatformError):
    """Some items of a call failed (``partial_success`` or ``error``)."""

    def __init__(self, op: str, failed: list[str], done: list[str]) -> None:
        ok = f"; succeeded: {', '.join(done)}" if done else ""
        super().__init__(f"{op}: failed for {'; '.join(failed)}{ok}. Nothing else was changed; "
                         "fix the cause and run the deploy again (it is idempotent)")
        self.failed, self.done = failed, done


@dataclass
class Counters:
    round_trips: int = 0
    retries: int = 0
    by_op: dict[str, int] = field(default_factory=dict)


class Platform:
    """One metro of the platform API, as the deploy uses it."""

    def __init__(self, metro: str, token: str, policy: RetryPolicy | None = None,
                 log: Callable[[str], None] = print) -> None:
        from unikraft_cloud import UnikraftCloud

        self.policy = policy or RetryPolicy()
        self.counters = Counters()
        self._retry_after: str | None = None
        self._log = log
        self._http = httpx.AsyncClient(
            timeout=httpx.Timeout(self.policy.call_timeout, connect=10.0),
            event_hooks={"request": [self._on_request], "response": [self._on_response]})
        self._ukc = UnikraftCloud(metro=metro, token=token, http=self._http)
        self.api = self._ukc.api.platform

    async def _on_request(self, request: httpx.Request) -> None:
        self.counters.round_trips += 1

    async def _on_response(self, response: httpx.Response) -> None:
        self._retry_after = response.headers.get("retry-after")

    async def aclose(self) -> None:
        await self._ukc.aclose()
        await self._http.aclose()

    # ------------------------------------------------------------ machinery
    async def call(self, op: str, fn: Callable[[], Awaitable[T]], *, idempotent: bool,
                   timeout: float | None = None) -> T:
        from unikraft_cloud.core.errors import UnikraftCloudError

        self.counters.by_op[op] = self.counters.by_op.get(op, 0) + 1
        limit = timeout or self.policy.call_timeout
        attempt = 0
        while True:
            attempt += 1
            self._retry_after = None
            status: int | None = None
            network = False
            try:
                return await asyncio.wait_for(fn(), limit)
            except TimeoutError:
                network, message = True, f"no answer within {limit:.0f} s"
            except UnikraftCloudError as exc:
                status = exc.status
                network = exc.kind == "network"
                message = str(exc).splitlines()[0][:300]
            if not (idempotent and retryable(status, network)) or attempt >= self.policy.attempts:
                hint = ("" if idempotent else
                        " (not retried: it is not idempotent; run the deploy again, it re-reads "
                        "the state first)")
                raise PlatformError(f"{op} failed after {attempt} attempt(s): {message}{hint}",
                                    status)
            delay = self.policy.delay(attempt, status, parse_retry_after(self._retry_after))
            self.counters.retries += 1
            self._log(f"retry   {op}: {message}; again in {delay:.1f} s "
                      f"({attempt}/{self.policy.attempts})")
            await asyncio.sleep(delay)

    @staticmethod
    def items(op: str, resp: Any, plural: str) -> list[Any]:
        """The envelope's items; raises :class:`ItemsFailed` naming each failed one."""
        data = getattr(resp, "data", None)
        got = list(getattr(data, plural, None) or [])
        failed = [f"{getattr(i, 'name', None) or getattr(i, 'uuid', '?')} "
                  f"({getattr(i, 'message', None) or 'error'})"
                  for i in got if getattr(i, "status", None) == "error"]
        if failed or getattr(resp, "status", "success") == "error":
            done = [str(getattr(i, "name", None) or getattr(i, "uuid", "?"))
                    for i in got if getattr(i, "status", None) != "error"]
            errs = [str(getattr(e, "message", "")) for e in (getattr(resp, "errors", None) or [])]
            raise ItemsFailed(op, failed or errs or ["the whole request"], done)
        return got

    # ------------------------------------------------------------ reads
    async def state(self) -> State:
        insts = self.items("list instances", await self.call(
            "list instances", lambda: self.api.instances.get_instances(details=True),
            idempotent=True), "instances")
        vols = self.items("list volumes", await self.call(
            "list volumes", lambda: self.api.volumes.get_volumes(details=True),
            idempotent=True), "volumes")
        groups = self.items("list service groups", await self.call(
            "list service groups", lambda: self.api.services.get_service_groups(details=True),
            idempotent=True), "service_groups")
        return State(
            instances=tuple(self.seen(i) for i in insts),
            volumes=tuple(v.name for v in vols if v.name),
            service_groups={g.name: (g.domains[0].fqdn if g.domains else "") or ""
                            for g in groups if g.name},
        )

    @staticmethod
    def seen(i: Any) -> Seen:
        return Seen(name=i.name or "", uuid=i.uuid or "", state=i.state or "",
                    image=i.image or "", tags=tuple(i.tags or ()),
                    service_group=(i.service_group.name or "") if i.service_group else "")

    async def get(self, uuid: str) -> Any:
        got = self.items("get instance", await self.call(
            "get instance", lambda: self.api.instances.get_instance_by_uuid(uuid, details=True),
            idempotent=True), "instances")
        return got[0]

    async def wait(self, uuid: str, state: str, seconds: int) -> str:
        """Wait (a GET with a JSON body) until ``state`` or the timeout; returns the state."""
        from unikraft_cloud.api.platform import models_gen as m

        body = m.WaitInstanceByUUIDRequestBody.model_validate({"state": state,
                                                               "timeout_s": seconds})
        limit = seconds + self.policy.call_timeout
        resp = await self.call("wait instance", lambda: self.api.instances.wait_instance_by_uuid(
            uuid, body=body, timeout=limit), idempotent=True, timeout=limit)
        got = getattr(resp.data, "instances", None) or []
        return str(got[0].state) if got else ""

    async def await_state(self, uuid: str, state: str, seconds: float) -> str:
        """Wait in short slices until ``state``, the timeout, or a stop (a crash does not
        make anyone wait the whole timeout); returns the last state seen."""
        deadline = asyncio.get_running_loop().time() + seconds
        seen = ""
        while True:
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                return seen
            seen = await self.wait(uuid, state, max(1, min(5, int(left))))
            if seen == state or (seen == "stopped" and state != "stopped"):
                return seen

    async def logs(self, uuid: str, tail_bytes: int = 4096) -> str:
        """The console's last bytes (the API sends them base64; GET with a body)."""
        from unikraft_cloud.api.platform import models_gen as m

        body = m.GetInstanceLogsByUUIDRequestBody.model_validate({"offset": -tail_bytes,
                                                                  "limit": tail_bytes})
        try:
            got = self.items("instance logs", await self.call(
                "instance logs", lambda: self.api.instances.get_instance_logs_by_uuid(
                    uuid, body=body), idempotent=True), "instances")
        except PlatformError as exc:
            return f"(logs unavailable: {exc})"
        raw = got[0].output or "" if got else ""
        return base64.b64decode(raw).decode("utf-8", "replace")

    # ------------------------------------------------------------ writes
    async def create_volume(self, name: str, size_mb: int) -> None:
        from unikraft_cloud.api.platform import models_gen as m

        body = m.CreateVolumeRequest.model_validate({"name": name, "size_mb": size_mb})
        self.items("create volume", await self.call(
            "create volume", lambda: self.api.volumes.create_volume(body=body),
            idempotent=False), "volumes")

    async def lock_volume(self, name: str) -> None:
        """Set the volume's delete_lock: the platform then refuses to delete it."""
        from unikraft_cloud.api.platform import models_gen as m

        body = [m.UpdateVolumesRequestItem.model_validate(
            {"name": name, "prop": "delete_lock", "op": "set", "value": True})]
        self.items("lock volume", await self.call(
            "lock volume", lambda: self.api.volumes.update_volumes(body=body),
            idempotent=True), "volumes")

    async def create_service_group(self, body: dict[str, Any]) -> str:
        from unikraft_cloud.api.platform import models_gen as m

        req = m.CreateServiceGroupRequest.model_validate(body)
        got = self.items("create service group", await self.call(
            "create service group", lambda: self.api.services.create_service_group(body=req),
            idempotent=False), "service_groups")
        return (got[0].domains[0].fqdn or "") if got and got[0].domains else ""

    async def create_instance(self, body: dict[str, Any]) -> Any:
        from unikraft_cloud.api.platform import models_gen as m

        req = m.CreateInstanceRequest.model_validate(body)
        got = self.items(f"create instance {body.get('name')}", await self.call(
            "create instance", lambda: self.api.instances.create_instance(body=req),
            idempotent=False), "instances")
        return got[0]

    async def start(self, uuid: str) -> None:
        from unikraft_cloud.api.platform import models_gen as m

        body = m.StartInstanceByUUIDRequestBody.model_validate({})
        self.items("start instance", await self.call(
            "start instance", lambda: self.api.instances.start_instance_by_uuid(uuid, body=body),
            idempotent=True), "instances")

    async def stop(self, names: list[str], drain_timeout_ms: int = 0) -> list[str]:
        """Stop (and drain) instances by name; one request, each item checked."""
        from unikraft_cloud.api.platform import models_gen as m

        body = [m.StopInstancesRequestItem.model_validate(
            {"name": n, **({"drain_timeout_ms": drain_timeout_ms} if drain_timeout_ms else {})})
            for n in names]
        got = self.items("stop instances", await self.call(
            "stop instances", lambda: self.api.instances.stop_instances(body=body),
            idempotent=True, timeout=drain_timeout_ms / 1000 + self.policy.call_timeout),
            "instances")
        return [i.name for i in got]

    async def delete(self, names: list[str]) -> list[str]:
        """Delete instances by name (never volumes); each item checked."""
        from unikraft_cloud.api.platform import models_gen as m

        body = [m.DeleteInstanceRequestItem.model_validate({"name": n}) for n in names]
        got = self.items("delete instances", await self.call(
            "delete instances", lambda: self.api.instances.delete_instances(body=body),
            idempotent=True), "instances")
        return [i.name for i in got]
