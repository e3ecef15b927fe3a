"""The KraftCloud deploy: read the state, print the plan, carry it out.

Plain module (the SDK comes in through :mod:`.api`). Order and guarantees:

1. read instances, volumes and service groups; print the plan (a dry run stops
   here and changes nothing);
2. volume: created if missing, never deleted;
3. PostgreSQL: on a new volume it boots once with the role passwords, and as
   soon as its log says the initialisation finished and the server is ready,
   it is removed and created again without them (the volume keeps the data);
4. service group: created once (stable public name, 443 -> 8080 over TLS);
5. migrations: a one-shot instance (restart never); the deploy waits for
   ``stopped``, reads the exit code and the redacted log, removes that
   instance whatever happened, and stops on failure;
6. OpenFGA: the first one is created in the service group. On an upgrade a
   *canary* of the new version runs first behind its own ephemeral name and
   must answer ``/healthz`` SERVING; only then is it replaced by the new
   instance in the service group (the platform fixes group membership at
   creation), which must stay running and keep the public name SERVING; then
   the old instances are drained (stop with a drain timeout) and removed. A
   canary or new instance that fails is removed and the old keep serving;
7. the smoke test through the public name.

:func:`backup` is a step of its own (``python -m ... backup``): the one-shot
``<name>-backup`` on the private network, the same pattern as the migration.

Nothing is deleted on a failure path except the deploy's own instances that
failed (the one-shot migration, the canary, a new instance that never
served); volumes are never deleted. Every line printed goes through
:class:`Printer`, which removes every secret the deploy holds; instance env is
never printed.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from ..errors import StepError
from ..migrate import explain_failure, redact
from . import crash
from .api import Platform, PlatformError
from .plan import DRAIN_TIMEOUT_MS, TAG_APP, Action, BackupJob, Spec, State, plan

PG_READY_TIMEOUT = 180.0  # seconds: first boot runs initdb and the init SQL
MIGRATE_TIMEOUT = 300  # seconds for the one-shot migration to stop
RUNNING_TIMEOUT = 120  # seconds for an instance to reach running
HEALTH_TIMEOUT = 90.0  # seconds for /healthz to say SERVING
STEADY_CHECKS = 3  # consecutive SERVING answers through the public name
PG_INIT_DONE = ("initialisation complete", "database already initialised")
PG_READY = "ready to accept connections"


class DeployError(StepError):
    """The deploy stopped; the sentence says what failed and the fix."""


class Printer:
    """Every line the deploy prints, filtered: known secrets and URI passwords."""

    def __init__(self, secrets: Sequence[str], sink: Callable[[str], None] = print) -> None:
        self.secrets = [s for s in secrets if s]
        self.sink = sink
        self.lines: list[str] = []

    def clean(self, text: str) -> str:
        return redact(text, self.secrets)

    def __call__(self, line: str) -> None:
        line = self.clean(line)
        self.lines.append(line)
        self.sink(line)


def check_ours(inst: Any, name: str) -> None:
    """Only instances this tool tagged as its own (``--name``) are ever stopped or deleted."""
    if f"{TAG_APP}.name={name}" not in (inst.tags or []):
        raise DeployError(
            f"an instance named {inst.name} exists but was not made by this deploy (it lacks "
            f"the tag {TAG_APP}.name={name}): nothing was deleted; rename or "
            "remove it yourself, or deploy with another --name"
        )


@dataclass
class Result:
    actions: list[Action]
    url: str = ""
    removed: list[str] = field(default_factory=list)
    timings: dict[str, float] = field(default_factory=dict)


@dataclass
class Deploy:
    platform: Platform
    spec: Spec
    secrets: Mapping[str, str]  # migrator, app, readonly, keys
    out: Printer
    smoke: bool = True
    verify: str | bool = True  # CA bundle for the public name (tests: the fake's edge CA)
    # GET <url>/healthz as text; None: over HTTPS with httpx (unit tests pass their own)
    health: Callable[[str], Awaitable[str]] | None = None

    # ------------------------------------------------------------ entry
    async def run(self, dry_run: bool = False) -> Result:
        t0 = time.monotonic()
        state = await self.platform.state()
        actions = plan(self.spec, state)
        mode = "dry run: nothing changes" if dry_run else "apply"
        self.out(f"plan for {self.spec.name} ({mode})")
        for a in actions:
            self.out("  " + a.line())
        result = Result(actions)
        if dry_run:
            return result
        new_volume = await self._volume(state)
        await self._postgres(state, new_volume)
        fqdn = await self._service_group(state)
        result.url = f"https://{fqdn}"
        current = [i for i in state.role(self.spec, "openfga")]
        keep = [i for i in current if i.name == self.spec.app and i.state in ("running", "standby")]
        if keep:
            stale = [i.name for i in current if i.name != self.spec.app]
            if stale:
                result.removed += await self._retire(stale)
        else:
            dead = state.instance(self.spec.app)
            if dead is not None:  # this version's own instance, left stopped by a failed run
                self._ours(dead)
                await self.platform.delete([dead.name])
                self.out(f"removed {dead.name} ({dead.state}), left by an earlier failed run")
            current = [i for i in current if i.name != self.spec.app]
            await self._migrate()
            if current:
                await self._canary()
            await self._new_app(fqdn)
            if current:
                result.removed += await self._retire([i.name for i in current])
        if self.smoke:
            await self._smoke(result.url)
        result.timings["total"] = time.monotonic() - t0
        self.out(f"done: {result.url} serves {self.spec.app}")
        return result

    # ------------------------------------------------------------ steps
    def _ours(self, inst: Any) -> None:
        """Only instances this tool tagged as its own are ever stopped or deleted."""
        check_ours(inst, self.spec.name)

    async def _volume(self, state: State) -> bool:
        if self.spec.volume in state.volumes:
            return False
        await self.platform.create_volume(self.spec.volume, self.spec.volume_size_mb)
        await self.platform.lock_volume(self.spec.volume)
        self.out(f"created volume {self.spec.volume} ({self.spec.volume_size_mb} MiB, "
                 "delete_lock set)")
        return True

    async def _postgres(self, state: State, new_volume: bool) -> None:
        spec, p = self.spec, self.platform
        pg = state.instance(spec.postgres)
        if pg is not None and pg.image == spec.postgres_image:
            if pg.state not in ("running", "standby"):
                await p.start(pg.uuid)
                await self._await_postgres(pg.uuid, "started")
            return
        if pg is not None:  # a new image: the volume is exclusive, so the old one goes first
            self._ours(pg)
            await p.stop([pg.name])
            await p.delete([pg.name])
            self.out(f"removed {pg.name} (image {pg.image}): replacing it on the same volume")
        passwords = None
        if new_volume:
            missing = [k for k in ("migrator", "app", "readonly") if not self.secrets.get(k)]
            if missing:
                raise DeployError(
                    f"a new database needs every role password on its first boot; missing: "
                    f"{', '.join(missing)} (pass --{missing[0]}-password as a secret)")
            passwords = {k: self.secrets[k] for k in ("migrator", "app", "readonly")}
        inst = await p.create_instance(spec.postgres_body(passwords))
        await self._await_postgres(inst.uuid, "first boot" if passwords else "boot")
        if passwords:
            await p.stop([spec.postgres])
            await p.delete([spec.postgres])
            inst = await p.create_instance(spec.postgres_body(None))
            await self._await_postgres(inst.uuid, "redeployed without passwords")
        self.out(f"postgres {spec.postgres} ready at {spec.postgres_host}:5432 (private only)")

    async def _await_postgres(self, uuid: str, what: str) -> None:
        """Running, and its log shows the server ready after initialisation."""
        p = self.platform
        state = await p.await_state(uuid, "running", RUNNING_TIMEOUT)
        deadline = time.monotonic() + PG_READY_TIMEOUT
        while True:
            log = await p.logs(uuid, 65536)
            marks = [log.rfind(m) for m in PG_INIT_DONE]
            done = max(marks)
            if done >= 0 and log.find(PG_READY, done) >= 0:
                self.out(f"postgres {what}: ready")
                return
            info = await p.get(uuid)
            state = str(info.state)
            if state in ("stopped", "stopping") or time.monotonic() > deadline:
                sentence = self._explain(info, log)
                raise DeployError(f"PostgreSQL did not become ready ({what}, state {state}): "
                                  f"{sentence}")
            await asyncio.sleep(1.0)

    async def _service_group(self, state: State) -> str:
        name = self.spec.service_group
        if name in state.service_groups:
            return state.service_groups[name]
        fqdn = await self.platform.create_service_group(self.spec.service_group_body())
        self.out(f"created service group {name}: https://{fqdn} (443 -> 8080, TLS)")
        return fqdn

    async def _migrate(self) -> None:
        spec, p = self.spec, self.platform
        leftover = (await p.state()).instance(spec.migrate)
        if leftover is not None:  # our own one-shot, left by an interrupted run
            self._ours(leftover)
            await p.delete([spec.migrate])
        inst = await p.create_instance(spec.migrate_body(self.secrets["migrator"]))
        await p.await_state(inst.uuid, "stopped", MIGRATE_TIMEOUT)
        info = await p.get(inst.uuid)
        log = await p.logs(inst.uuid, 16384)
        tail = [ln for ln in self.out.clean(log).splitlines() if ln.strip()][-6:]
        for ln in tail:
            self.out(f"  migrate| {ln}")
        await p.delete([spec.migrate])
        if str(info.state) != "stopped" or info.exit_code != 0:
            stop = self._stop(info)
            why = (explain_failure(self.out.clean(log)) if stop.exit_code not in (None, 0)
                   else crash.explain(stop, log, self.out.secrets))
            raise DeployError(f"migrations failed (exit code {info.exit_code}, state "
                              f"{info.state}); the deploy stopped before touching OpenFGA: {why}")
        self.out(f"migrate {spec.migrate}: exit 0, removed")

    async def _canary(self) -> None:
        spec, p = self.spec, self.platform
        leftover = (await p.state()).instance(spec.canary)
        if leftover is not None:
            self._ours(leftover)
            await p.delete([spec.canary])
        inst = await p.create_instance(spec.app_body(self.secrets["app"], self.secrets["keys"],
                                                     canary=True))
        try:
            await p.await_state(inst.uuid, "running", RUNNING_TIMEOUT)
            info = await p.get(inst.uuid)
            domains = (info.service_group.domains or []) if info.service_group else []
            fqdn = domains[0].fqdn if domains else ""
            ok, last = await self._serving(f"https://{fqdn}", HEALTH_TIMEOUT, 1, inst.uuid)
            if not ok:
                info = await p.get(inst.uuid)
                raise DeployError(f"the new version's canary {spec.canary} did not serve "
                                  f"({last}): {self._explain(info, await p.logs(inst.uuid))}; "
                                  "the old version keeps serving")
            self.out(f"canary {spec.canary}: SERVING on its own name")
        finally:
            await p.delete([spec.canary])

    async def _new_app(self, fqdn: str) -> None:
        spec, p = self.spec, self.platform
        inst = await p.create_instance(spec.app_body(self.secrets["app"], self.secrets["keys"]))
        await p.await_state(inst.uuid, "running", RUNNING_TIMEOUT)
        ok, last = await self._serving(f"https://{fqdn}", HEALTH_TIMEOUT, STEADY_CHECKS, inst.uuid)
        if not ok:
            info = await p.get(inst.uuid)
            sentence = self._explain(info, await p.logs(inst.uuid))
            await p.stop([spec.app])
            await p.delete([spec.app])
            raise DeployError(f"{spec.app} did not serve through https://{fqdn} ({last}): "
                              f"{sentence}; it was removed and the previous instances (if any) "
                              "keep serving")
        self.out(f"openfga {spec.app}: running in {spec.service_group}, https://{fqdn} SERVING")

    async def _retire(self, names: list[str]) -> list[str]:
        p = self.platform
        await p.stop(names, DRAIN_TIMEOUT_MS)
        removed = await p.delete(names)
        self.out(f"drained and removed {', '.join(names)}")
        return removed

    async def _serving(self, url: str, seconds: float, steady: int, uuid: str
                       ) -> tuple[bool, str]:
        """``steady`` consecutive SERVING answers from ``url``/healthz within ``seconds``;
        gives up early if the instance ``uuid`` stopped."""
        deadline = time.monotonic() + seconds
        good, last = 0, "no answer yet"
        while time.monotonic() < deadline:
            info = await self.platform.get(uuid)  # the new instance must stay up throughout
            if str(info.state) in ("stopped", "stopping"):
                return False, f"instance {info.state}; last answer {last}"
            last = await self.probe(url)
            good = good + 1 if '"SERVING"' in last else 0
            if good >= steady:
                return True, last
            await asyncio.sleep(0.5)
        return False, last

    async def probe(self, url: str) -> str:
        """One GET of ``url``/healthz: the answer, or the error, as text."""
        if self.health is not None:
            return await self.health(url)
        try:
            verify: ssl.SSLContext | bool = (ssl.create_default_context(cafile=self.verify)
                                             if isinstance(self.verify, str) else self.verify)
            async with httpx.AsyncClient(timeout=5.0, verify=verify) as http:
                resp = await http.get(f"{url}/healthz")
            return f"HTTP {resp.status_code} {resp.text[:120]}"
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"

    async def _smoke(self, url: str) -> None:
        from ...standalone.smoke import SmokeError, run_smoke

        key = self.secrets["keys"].split(",")[0]
        try:
            report = await run_smoke(url, key, health_wait=30.0)
        except SmokeError as exc:
            raise DeployError(f"the smoke test through {url} failed: {self.out.clean(str(exc))}"
                              ) from None
        self.out(f"smoke through {url}: " + self.out.clean(report.summary()).splitlines()[0])

    # ------------------------------------------------------------ explaining
    @staticmethod
    def _stop(info: Any) -> crash.Stop:
        return crash.Stop(name=str(info.name), stop_reason=info.stop_reason,
                          stop_code=info.stop_code, exit_code=info.exit_code,
                          uptime_ms=info.uptime_ms,
                          memory_mb=info.memory_mb)

    def _explain(self, info: Any, log: str) -> str:
        if str(info.state) not in ("stopped", "stopping"):
            tail = " | ".join(ln.strip() for ln in self.out.clean(log).splitlines()
                              if ln.strip())[-600:]
            return f"instance {info.name} is {info.state}; last log lines: {tail or '(none)'}"
        return crash.explain(self._stop(info), log, self.out.secrets)


async def backup(platform: Platform, job: BackupJob, secrets: Mapping[str, str],
                 out: Printer) -> None:
    """One backup: the one-shot ``<name>-backup`` (restart never, no service: private only)
    dumps ``<name>-postgres.internal`` as the read-only role to the object store and stops.
    Waits for ``stopped``, prints the redacted log tail, deletes that instance whatever
    happened, and raises :class:`DeployError` with a sentence on a non-zero exit, a crash or
    a timeout. Its env holds the secrets, so it never outlives the run and is never printed."""
    body = job.body(secrets)  # missing secrets fail here, before any request
    state = await platform.state()
    pg = state.instance(f"{job.name}-postgres")
    if pg is None or pg.state not in ("running", "standby"):
        raise DeployError(
            f"no running PostgreSQL {job.name}-postgres to back up "
            f"({'missing' if pg is None else pg.state}): deploy first, or pass the deploy's "
            "--name")
    leftover = state.instance(job.instance)
    if leftover is not None:  # our own one-shot, left by an interrupted run
        check_ours(leftover, job.name)
        await platform.delete([job.instance])
        out(f"removed {job.instance} ({leftover.state}), left by an interrupted run")
    out(f"backup {job.instance}: {job.image} -> {job.endpoint} bucket {job.bucket} "
        f"prefix {job.prefix!r} (private network, restart never)")
    inst = await platform.create_instance(body)
    seen, log = "", ""
    info: Any = None
    try:
        seen = await platform.await_state(inst.uuid, "stopped", job.timeout_s)
        info = await platform.get(inst.uuid)
        log = await platform.logs(inst.uuid, 16384)
    finally:  # whatever happened: the one-shot goes (its env holds the secrets)
        if seen != "stopped":
            with contextlib.suppress(PlatformError):  # it may have stopped meanwhile
                await platform.stop([job.instance])
        await platform.delete([job.instance])
    clean = out.clean(log)
    for ln in [ln for ln in clean.splitlines() if ln.strip()][-8:]:
        out(f"  backup| {ln}")
    if seen != "stopped":
        raise DeployError(
            f"the backup {job.instance} did not stop within {job.timeout_s}s (state "
            f"{info.state if info else seen}); it was stopped and removed and no new backup was "
            "recorded: raise --backup-timeout-s or look at the log lines above")
    if info.exit_code != 0:
        errors = [ln.strip() for ln in clean.splitlines() if ln.strip().startswith("error:")]
        why = (errors[-1].removeprefix("error:").strip()
               if errors and info.exit_code is not None
               else crash.explain(Deploy._stop(info), log, out.secrets))
        raise DeployError(f"the backup failed (exit code {info.exit_code}, state {info.state}) "
                          f"and {job.instance} was removed: {why}")
    out(f"backup {job.instance}: exit 0, removed")


async def status(platform: Platform, spec: Spec, out: Printer) -> State:
    """What runs now, with a sentence for every stopped instance of this deploy."""
    state = await platform.state()
    mine = [i for i in state.instances if f"openfga-release.name={spec.name}" in i.tags]
    out(f"volume {spec.volume}: {'present' if spec.volume in state.volumes else 'missing'}")
    fqdn = state.service_groups.get(spec.service_group)
    out(f"service group {spec.service_group}: " + (f"https://{fqdn}" if fqdn is not None
                                                   else "missing"))
    for i in mine:
        line = f"{i.name}: {i.state} ({i.image})"
        if i.state == "stopped":
            info = await platform.get(i.uuid)
            line += " -- " + crash.explain(Deploy._stop(info), await platform.logs(i.uuid),
                                           out.secrets)
        out(line)
    return state
