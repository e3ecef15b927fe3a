"""A FAKE of the Unikraft Cloud platform API, for tests only (a contract fake).

This is not KraftCloud. It is a small HTTP server that speaks the part of the
platform API the deploy uses, the way the official SDK (``unikraft-cloud``
0.3.0, pinned) and its docs describe it, so the deploy can be proven without
the cloud:

* **Routes from the SDK itself**: every (method, path) is read from the SDK's
  generated plumbing clients (``unikraft_cloud/api/platform/*_gen.py``), with
  the body type and response model of that operation. A request the SDK
  could not have sent has no route.
* **Requests validated** against the SDK's own request models, strictly: the
  models accept unknown fields silently, so the fake also requires
  ``model_extra == {}`` everywhere in the tree (HTTP 400 otherwise).
* **Responses validated** against the SDK's response models the same way
  before they are sent; a violation is a bug in the fake, recorded in
  :attr:`UkcFake.violations` (tests assert it stays empty) and answered 500.
* **Documented behaviour**: the envelope ``{status, data: {<plural>: [...]},
  errors}`` with lists even for one item; ``partial_success`` inside HTTP 200
  with per-item ``status``; GET *with a JSON body* for ``wait`` and ``log``;
  logs base64-encoded with offset/limit (negative offset from the end);
  states ``starting -> running -> draining/stopping -> stopped``;
  ``stop_reason`` bits (F U P A K) and ``stop_code`` packing; read-write
  volumes mounted by one instance at a time; private names ``<name>.internal``;
  named (persistent) service groups and ephemeral ones that go with their
  instance; Bearer token.
* **Faults** (:class:`Faults`): 429 with Retry-After, 5xx, slow answers,
  ``partial_success`` for chosen items, an instance that crashes with a given
  ``stop_code`` or exits with a given code.

What runs *inside* an instance is a :class:`Runner`'s job: the default
:class:`ScriptedRunner` runs nothing (instances just change state, migrate
"instances" exit 0); ``tests/support/ukc_workloads.py`` runs the real OpenFGA
binary and the real PostgreSQL start script in network namespaces.

Use::

    with UkcFake() as fake:               # fake.base_url, fake.token
        ukc = UnikraftCloud(base_url=fake.base_url, token=fake.token)
"""

from __future__ import annotations

import base64
import contextlib
import fnmatch
import inspect
import json
import re
import threading
import time
import typing
import uuid as uuidlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Protocol
from urllib.parse import parse_qs, urlsplit

from pydantic import BaseModel, TypeAdapter, ValidationError
from unikraft_cloud.api.platform import instances_gen, models_gen, services_gen, volumes_gen

FAKE_BANNER = "unikraft-cloud FAKE (tests/support/ukc_fake.py): not the real platform"
KERNEL, APP, PLATFORM, USER, FORCED = 1, 2, 4, 8, 16


# ---------------------------------------------------------------- routes from the SDK


@dataclass(frozen=True)
class Route:
    op: str  # the SDK operation name, e.g. "create_instance"
    method: str
    pattern: re.Pattern[str]
    body: Any  # a type for TypeAdapter, or None
    body_required: bool
    response: type[BaseModel]


def _routes() -> list[Route]:
    routes = []
    for module in (instances_gen, volumes_gen, services_gen):
        for cls_name, cls in inspect.getmembers(module, inspect.isclass):
            if not cls_name.endswith("Api") or cls.__module__ != module.__name__:
                continue
            for op, fn in inspect.getmembers(cls, inspect.iscoroutinefunction):
                if op.startswith("_"):
                    continue
                src = inspect.getsource(fn)
                m_method = re.search(r'method="(\w+)"', src)
                m_path = re.search(r'path=f?"([^"]+)"', src)
                if not (m_method and m_path):
                    continue
                hints = typing.get_type_hints(fn, {**vars(module), "models": models_gen})
                path = re.sub(r"\{quote\((\w+), safe=''\)\}", r"(?P<\1>[^/]+)", m_path.group(1))
                sig = inspect.signature(fn)
                body_param = sig.parameters.get("body")
                routes.append(Route(
                    op, m_method.group(1), re.compile(f"^{path}$"),
                    hints.get("body"),
                    body_param is not None and body_param.default is inspect.Parameter.empty,
                    hints["return"],
                ))
    # literal paths before templated ones (/v1/instances/wait before /v1/instances/{uuid})
    return sorted(routes, key=lambda r: "(?P<" in r.pattern.pattern)


ROUTES = _routes()


def extra_fields(value: Any, where: str = "") -> list[str]:
    """Every field in a validated model tree that its model does not describe."""
    found: list[str] = []
    if isinstance(value, BaseModel):
        for key in value.model_extra or {}:
            found.append(f"{where}.{key}".lstrip("."))
        for name in type(value).model_fields:
            found += extra_fields(getattr(value, name), f"{where}.{name}")
    elif isinstance(value, list):
        for i, item in enumerate(value):
            found += extra_fields(item, f"{where}[{i}]")
    elif isinstance(value, dict):
        for key, item in value.items():
            found += extra_fields(item, f"{where}.{key}")
    return found


def validate_strict(kind: Any, data: Any) -> Any:
    """``kind`` validated from ``data``, refusing any field the model does not know."""
    parsed = TypeAdapter(kind).validate_python(data)
    unknown = extra_fields(parsed)
    if unknown:
        raise ValueError(f"unknown field(s): {', '.join(unknown)}")
    return parsed


# ---------------------------------------------------------------- state


@dataclass
class FakeVolume:
    uuid: str
    name: str
    size_mb: int
    created_at: str
    attached_to: str | None = None  # instance uuid
    at: str = ""
    delete_lock: bool = False


@dataclass
class FakeGroup:
    uuid: str
    name: str
    fqdn: str
    services: list[dict[str, Any]]
    persistent: bool
    created_at: str
    instances: list[str] = field(default_factory=list)  # uuids


@dataclass
class FakeInstance:
    uuid: str
    name: str
    image: str
    args: list[str]
    env: dict[str, str]
    memory_mb: int
    restart_policy: str
    tags: list[str]
    created_at: str
    private_ip: str
    volumes: list[tuple[str, str]] = field(default_factory=list)  # (volume uuid, at)
    group: str | None = None  # group uuid
    scale_to_zero: dict[str, Any] | None = None
    state: str = "stopped"
    start_count: int = 0
    started: float = 0.0
    stopped: float = 0.0
    stop_reason: int | None = None
    stop_code: int | None = None
    exit_code: int | None = None
    console: bytearray = field(default_factory=bytearray)
    handle: Any = None  # the runner's handle
    stopping_by: int = 0  # stop_reason bits of a requested stop

    def log(self, text: str) -> None:
        self.console += text.encode()


class Runner(Protocol):
    """Runs what is inside an instance; reports its end with ``fake.exited``."""

    def start(self, fake: UkcFake, inst: FakeInstance) -> None: ...
    def stop(self, fake: UkcFake, inst: FakeInstance, force: bool) -> None: ...
    def changed(self, fake: UkcFake) -> None: ...  # instances came or went (private names)


class ScriptedRunner:
    """Runs nothing: an instance "runs" until stopped; a ``migrate`` or ``backup`` argv
    (the one-shots) exits 0."""

    def start(self, fake: UkcFake, inst: FakeInstance) -> None:
        inst.log(f"[fake] {inst.name}: {' '.join(inst.args) or inst.image}\n")
        if "migrate" in inst.args:
            inst.log('{"level":"info","msg":"migration done"}\n')
            threading.Timer(0.05, fake.exited, (inst.uuid, 0)).start()
        elif "openfga_release.recipes.backup" in inst.args:
            inst.log('{"backup": "openfga-backup-openfga-20260101T000000Z"}\n')
            threading.Timer(0.05, fake.exited, (inst.uuid, 0)).start()
        elif "postgres" in inst.image:  # what the real start script logs, in short
            first = any(k.endswith("_PASSWORD") for k in inst.env)
            inst.log("openfga-postgres: " + ("initialisation complete\n" if first else
                                             "database already initialised: starting\n"))
            inst.log("LOG:  database system is ready to accept connections\n")

    def stop(self, fake: UkcFake, inst: FakeInstance, force: bool) -> None:
        fake.exited(inst.uuid, 0)

    def changed(self, fake: UkcFake) -> None:
        pass


# ---------------------------------------------------------------- faults


@dataclass
class Fault:
    op: str  # SDK operation name or a glob ("get_*")
    times: int = 1
    status: int = 0  # 429, 503...: answer this instead
    retry_after: str | None = None
    delay: float = 0.0  # answer this much later (a slow API)
    fail_items: tuple[str, ...] = ()  # names: these items fail inside HTTP 200


@dataclass
class Crash:
    name: str  # instance name glob
    stop_code: int | None = None  # a kernel crash (stop_reason ----K)
    exit_code: int | None = None  # an app exit (stop_reason ---AK)
    after: float = 0.1  # seconds after start
    console: str = ""
    times: int = 1


class Faults:
    def __init__(self) -> None:
        self.http: list[Fault] = []
        self.crashes: list[Crash] = []
        self.lock = threading.Lock()

    def add(self, fault: Fault) -> None:
        with self.lock:
            self.http.append(fault)

    def crash(self, crash: Crash) -> None:
        with self.lock:
            self.crashes.append(crash)

    def take(self, op: str) -> Fault | None:
        with self.lock:
            for f in self.http:
                if f.times > 0 and fnmatch.fnmatch(op, f.op):
                    f.times -= 1
                    return f
        return None

    def take_crash(self, name: str) -> Crash | None:
        with self.lock:
            for c in self.crashes:
                if c.times > 0 and fnmatch.fnmatch(name, c.name):
                    c.times -= 1
                    return c
        return None


class ApiError(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")


# ---------------------------------------------------------------- the fake


class UkcFake:
    """The FAKE platform: state, handlers and a ThreadingHTTPServer."""

    def __init__(self, runner: Runner | None = None, *, host: str = "127.0.0.1",
                 metro: str = "fra", token: str = "fake-token-for-tests",  # noqa: S107
                 images: dict[str, Any] | None = None, ip_prefix: str = "10.0.1.") -> None:
        self.runner: Runner = runner or ScriptedRunner()
        self.host, self.metro, self.token = host, metro, token
        self.images = images  # None: every image exists; else ref -> runner config
        self.ip_prefix = ip_prefix
        self.instances: dict[str, FakeInstance] = {}
        self.volumes: dict[str, FakeVolume] = {}
        self.groups: dict[str, FakeGroup] = {}
        self.faults = Faults()
        self.requests: list[tuple[str, str, Any]] = []  # (method, path, body) as received
        self.violations: list[str] = []
        self.cond = threading.Condition()
        self._next_ip = 10
        self._server: ThreadingHTTPServer | None = None
        self.port = 0

    # ------------------------------------------------------------ lifecycle
    def start(self, port: int = 0) -> UkcFake:
        fake = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def _any(self) -> None:
                fake._handle(self)

            do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = _any

        self._server = ThreadingHTTPServer((self.host, port), Handler)
        self._server.daemon_threads = True
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def close(self) -> None:
        for inst in list(self.instances.values()):
            if inst.state not in ("stopped",):
                with contextlib.suppress(Exception):
                    self.runner.stop(self, inst, True)
        if self._server:
            self._server.shutdown()
            self._server.server_close()

    def __enter__(self) -> UkcFake:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------ http
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = "<not json>"
        self.requests.append((h.command, url.path, body))
        route, params = self._route(h.command, url.path)
        status, payload, extra_headers = 200, None, {}
        try:
            if h.headers.get("authorization") != f"Bearer {self.token}":
                raise ApiError(401, "FAKE: missing or wrong Bearer token")
            if route is None:
                raise ApiError(404, f"FAKE: no route {h.command} {url.path} in the SDK's API")
            fault = self.faults.take(route.op)
            if fault and fault.delay:
                time.sleep(fault.delay)
            if fault and fault.status:
                extra_headers = {"Retry-After": fault.retry_after} if fault.retry_after else {}
                raise ApiError(fault.status, f"FAKE: injected HTTP {fault.status}")
            parsed = self._request_body(route, body)
            query = {k: v for k, v in parse_qs(url.query).items()}
            payload = getattr(self, f"op_{route.op}")(parsed, query=query, **params)
            if fault and fault.fail_items:
                payload = self._partial(payload, fault.fail_items)
            if route.response is not None:
                try:
                    validate_strict(route.response, payload)
                except (ValidationError, ValueError) as exc:
                    self.violations.append(f"{route.op}: {exc}")
                    raise ApiError(500, f"FAKE bug: its answer broke the SDK model: {exc}"
                                   ) from None
        except ApiError as err:
            status = err.status
            payload = {"status": "error", "message": err.message,
                       "errors": [{"status": err.status, "message": err.message}]}
        except AttributeError as exc:
            status = 501
            payload = {"status": "error", "message": f"FAKE: {route.op if route else '?'} "
                       f"is not implemented by the fake ({exc})"}
        data = json.dumps(payload).encode()
        h.send_response(status)
        h.send_header("content-type", "application/json")
        h.send_header("content-length", str(len(data)))
        h.send_header("x-fake", FAKE_BANNER)
        for k, v in extra_headers.items():
            h.send_header(k, v)
        h.end_headers()
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):  # a client timed out
            h.wfile.write(data)

    @staticmethod
    def _route(method: str, path: str) -> tuple[Route | None, dict[str, str]]:
        for r in ROUTES:
            if r.method == method:
                m = r.pattern.match(path)
                if m:
                    return r, m.groupdict()
        return None, {}

    @staticmethod
    def _request_body(route: Route, body: Any) -> Any:
        if route.body is None:
            if body is not None:
                raise ApiError(400, f"FAKE: {route.op} takes no body")
            return None
        if body is None:
            if route.body_required:
                raise ApiError(400, f"FAKE: {route.op} needs a JSON body")
            return None
        try:
            return validate_strict(route.body, body)
        except (ValidationError, ValueError) as exc:
            raise ApiError(400, f"FAKE: invalid {route.op} body: {exc}") from None

    @staticmethod
    def _partial(payload: dict[str, Any], names: tuple[str, ...]) -> dict[str, Any]:
        data = payload.get("data") or {}
        for plural, items in data.items():
            for i, item in enumerate(items):
                if item.get("name") in names:
                    items[i] = {"status": "error", "name": item["name"],
                                "message": "FAKE: injected item failure", "error": 9}
            data[plural] = items
        bad = sum(1 for items in data.values() for it in items if it.get("status") == "error")
        total = sum(len(items) for items in data.values())
        payload["status"] = "error" if bad == total else "partial_success"
        return payload

    @staticmethod
    def envelope(plural: str, items: list[dict[str, Any]]) -> dict[str, Any]:
        bad = sum(1 for it in items if it.get("status") == "error")
        status = "success" if not bad else ("error" if bad == len(items) else "partial_success")
        return {"status": status, "data": {plural: items}, "op_time_us": 42}

    # ------------------------------------------------------------ lookups
    def _find(self, key: str) -> FakeInstance | None:
        return self.instances.get(key) or next(
            (i for i in self.instances.values() if i.name == key), None)

    def _need(self, key: str) -> FakeInstance:
        inst = self._find(key)
        if inst is None:
            raise ApiError(404, f"FAKE: no instance {key}")
        return inst

    def _group_by(self, ref: Any) -> FakeGroup | None:
        for g in self.groups.values():
            if ref and (g.uuid == getattr(ref, "uuid", None) or g.name == getattr(ref, "name",
                                                                                  None)):
                return g
        return None

    # ------------------------------------------------------------ views
    def view(self, inst: FakeInstance) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": "success", "uuid": inst.uuid, "name": inst.name,
            "created_at": inst.created_at, "state": inst.state,
            "private_fqdn": f"{inst.name}.internal", "private_ip": inst.private_ip,
            "image": inst.image, "memory_mb": inst.memory_mb, "vcpus": 1,
            "args": inst.args, "env": inst.env, "start_count": inst.start_count,
            "restart_policy": inst.restart_policy, "tags": inst.tags,
            "volumes": [{"uuid": v, "name": self.volumes[v].name, "at": at, "readonly": False}
                        for v, at in inst.volumes if v in self.volumes],
        }
        if inst.started:
            end = inst.stopped if inst.state == "stopped" and inst.stopped else time.time()
            out["uptime_ms"] = int((end - inst.started) * 1000)
        for key in ("stop_reason", "stop_code", "exit_code"):
            if getattr(inst, key) is not None and inst.state == "stopped":
                out[key] = getattr(inst, key)
        if inst.scale_to_zero:
            out["scale_to_zero"] = {"enabled": True, **inst.scale_to_zero}
        g = self.groups.get(inst.group or "")
        if g:
            out["service_group"] = {"uuid": g.uuid, "name": g.name,
                                    "domains": [{"fqdn": g.fqdn}]}
            out["services"] = [f"tcp:{s.get('port')}" for s in g.services]
        return out

    def group_view(self, g: FakeGroup) -> dict[str, Any]:
        return {"status": "success", "uuid": g.uuid, "name": g.name, "created_at": g.created_at,
                "persistent": g.persistent, "autoscale": False, "services": g.services,
                "domains": [{"fqdn": g.fqdn}],
                "instances": [{"uuid": u, "name": self.instances[u].name}
                              for u in g.instances if u in self.instances]}

    def volume_view(self, v: FakeVolume) -> dict[str, Any]:
        out: dict[str, Any] = {
            "status": "success", "uuid": v.uuid, "name": v.name, "created_at": v.created_at,
            "state": "mounted" if v.attached_to else "available", "size_mb": v.size_mb,
            "persistent": True, "quota_policy": "static", "access_mode": "rwo",
            "delete_lock": v.delete_lock}
        if v.attached_to and v.attached_to in self.instances:
            inst = self.instances[v.attached_to]
            out["attached_to"] = [{"uuid": inst.uuid, "name": inst.name}]
            out["mounted_by"] = [{"uuid": inst.uuid, "name": inst.name, "readonly": False}]
        return out

    # ------------------------------------------------------------ lifecycle of instances
    def _boot(self, inst: FakeInstance) -> None:
        inst.state = "starting"
        inst.start_count += 1
        inst.started, inst.stopped = time.time(), 0.0
        inst.stop_reason = inst.stop_code = inst.exit_code = None
        inst.stopping_by = 0
        inst.log(f"[    0.000000] FAKE boot of {inst.name} ({inst.image})\n")
        crash = self.faults.take_crash(inst.name)
        if crash is not None:
            inst.state = "running"
            if crash.console:
                inst.log(crash.console)

            def die() -> None:
                with self.cond:
                    inst.log("[    0.030176] reboot: Restarting system\n")
                    self._stopped(inst, KERNEL if crash.stop_code is not None else APP | KERNEL,
                                  crash.exit_code, crash.stop_code or 0)
            threading.Timer(crash.after, die).start()
            return
        self.runner.start(self, inst)
        if inst.state == "starting":
            inst.state = "running"
        self.cond.notify_all()

    def _stopped(self, inst: FakeInstance, reason: int, exit_code: int | None,
                 stop_code: int | None) -> None:
        inst.state = "stopped"
        inst.stopped = time.time()
        inst.stop_reason, inst.exit_code, inst.stop_code = reason, exit_code, stop_code
        self.runner.changed(self)
        self.cond.notify_all()

    def exited(self, uuid: str, code: int) -> None:
        """The runner's report: the instance's app ended with ``code``."""
        with self.cond:
            inst = self.instances.get(uuid)
            if inst is None or inst.state == "stopped":
                return
            if inst.stopping_by & FORCED:  # no chance to exit cleanly: no codes
                self._stopped(inst, inst.stopping_by, None, None)
            elif inst.stopping_by:
                self._stopped(inst, inst.stopping_by | APP | KERNEL, code, 0)
            else:
                self._stopped(inst, APP | KERNEL, code, 0)

    # ------------------------------------------------------------ instances
    def op_get_instances(self, body: Any, query: dict[str, list[str]]) -> dict[str, Any]:
        with self.cond:
            names = query.get("name")
            items = [self.view(i) for i in self.instances.values()
                     if not names or i.name in names]
        return self.envelope("instances", items)

    def op_get_instance_by_uuid(self, body: Any, query: Any, uuid: str) -> dict[str, Any]:
        with self.cond:
            return self.envelope("instances", [self.view(self._need(uuid))])

    def op_create_instance(self, body: Any, query: Any) -> dict[str, Any]:
        req: models_gen.CreateInstanceRequest = body
        with self.cond:
            name = req.name or f"fake-{uuidlib.uuid4().hex[:8]}"
            if self._find(name):
                raise ApiError(409, f"FAKE: an instance named {name} exists")
            image = req.image if isinstance(req.image, str) else (req.image.url if req.image
                                                                  else None)
            if not image:
                raise ApiError(400, "FAKE: an image is required")
            if self.images is not None and image not in self.images:
                raise ApiError(404, f"FAKE: image {image} not found in the registry")
            if req.scale_to_zero and not req.service_group:
                raise ApiError(400, "FAKE: scale_to_zero requires service_group")
            mounts: list[tuple[str, str]] = []
            for vol in req.volumes or []:
                v = next((x for x in self.volumes.values()
                          if vol.uuid == x.uuid or vol.name == x.name), None)
                if v is None:
                    raise ApiError(404, f"FAKE: volume {vol.name or vol.uuid} not found")
                if v.attached_to and v.attached_to in self.instances:
                    other = self.instances[v.attached_to].name
                    raise ApiError(409, f"FAKE: volume {v.name} is attached to {other}: a "
                                   "read-write volume mounts on one instance at a time")
                mounts.append((v.uuid, vol.at))
            group: FakeGroup | None = None
            if req.service_group:
                group = self._group_by(req.service_group)
                if group is None:
                    if req.service_group.name or req.service_group.uuid:
                        raise ApiError(404, "FAKE: service group "
                                       f"{req.service_group.name or req.service_group.uuid} "
                                       "not found")
                    services = [s.model_dump(exclude_none=True)
                                for s in req.service_group.services or []]
                    group = self._new_group(None, services, persistent=False)
            self._next_ip += 1
            inst = FakeInstance(
                uuid=str(uuidlib.uuid4()), name=name, image=image, args=list(req.args or []),
                env=dict(req.env or {}), memory_mb=req.memory_mb or 128,
                restart_policy=req.restart_policy or "never", tags=list(req.tags or []),
                created_at=_now(), private_ip=f"{self.ip_prefix}{self._next_ip}",
                volumes=mounts, group=group.uuid if group else None,
                scale_to_zero=(req.scale_to_zero.model_dump(exclude_none=True)
                               if req.scale_to_zero else None))
            self.instances[inst.uuid] = inst
            for vid, at in mounts:
                self.volumes[vid].attached_to, self.volumes[vid].at = inst.uuid, at
            if group:
                group.instances.append(inst.uuid)
            self.runner.changed(self)
            if req.autostart is not False:
                self._boot(inst)
            return self.envelope("instances", [self.view(inst)])

    def op_wait_instance_by_uuid(self, body: Any, query: Any, uuid: str) -> dict[str, Any]:
        req: models_gen.WaitInstanceByUUIDRequestBody = body
        timeout = req.timeout_s if req.timeout_s is not None else (
            (req.timeout_ms or 0) / 1000)
        deadline = time.monotonic() + (3600 if timeout == -1 else timeout)
        with self.cond:
            inst = self._need(uuid)
            while inst.state != req.state and time.monotonic() < deadline:
                self.cond.wait(min(0.5, max(0.01, deadline - time.monotonic())))
            item: dict[str, Any] = {"status": "success", "uuid": inst.uuid, "name": inst.name,
                                    "state": inst.state}
            if inst.state != req.state:
                item.update(status="error", message=f"FAKE: timed out waiting for {req.state}")
            return self.envelope("instances", [item])

    def op_get_instance_logs_by_uuid(self, body: Any, query: Any, uuid: str) -> dict[str, Any]:
        req: models_gen.GetInstanceLogsByUUIDRequestBody = body
        with self.cond:
            inst = self._need(uuid)
            data = bytes(inst.console)
        offset = req.offset or 0
        start = max(0, len(data) + offset) if offset < 0 else min(offset, len(data))
        end = min(len(data), start + req.limit) if req.limit else len(data)
        return self.envelope("instances", [{
            "status": "success", "uuid": inst.uuid, "name": inst.name, "state": inst.state,
            "output": base64.b64encode(data[start:end]).decode(),
            "available": {"start": 0, "end": len(data)}, "range": {"start": start, "end": end},
        }])

    def op_start_instance_by_uuid(self, body: Any, query: Any, uuid: str) -> dict[str, Any]:
        with self.cond:
            inst = self._need(uuid)
            prev = inst.state
            if inst.state == "stopped":
                self._boot(inst)
            return self.envelope("instances", [{"status": "success", "uuid": inst.uuid,
                                                "name": inst.name, "state": inst.state,
                                                "previous_state": prev}])

    def _stop(self, inst: FakeInstance, force: bool, drain_ms: int) -> str:
        prev = inst.state
        if inst.state in ("stopped", "stopping"):
            return prev
        inst.stopping_by = USER | PLATFORM | (FORCED if force else 0)  # 15 -UPAK, 28 FUP--
        if drain_ms and inst.group:
            inst.state = "draining"  # the edge sends it no new connection from now on
            self.runner.changed(self)
            self.cond.wait(min(drain_ms / 1000, getattr(self.runner, "drain_s", 0.5)))
        inst.state = "stopping"
        self.runner.changed(self)
        self.cond.release()
        try:
            self.runner.stop(self, inst, force)
        finally:
            self.cond.acquire()
        if force and inst.state != "stopped":
            self._stopped(inst, FORCED | USER | PLATFORM, None, None)
        return prev

    def _each_instance(self, body: Any, act: Callable[[FakeInstance, Any], dict[str, Any]]
                       ) -> dict[str, Any]:
        """A list request, item by item: ``act`` on each instance found, 404 items for the rest
        (per-item errors inside HTTP 200, as the platform answers)."""
        items = []
        for item in body:
            with self.cond:
                inst = self._find(item.uuid or item.name or "")
                if inst is None:
                    items.append({"status": "error", "name": item.name, "uuid": item.uuid,
                                  "message": "FAKE: no such instance", "error": 404})
                    continue
                done = act(inst, item)
                items.append({"status": "success", "uuid": inst.uuid, "name": inst.name, **done})
        return self.envelope("instances", items)

    def op_stop_instances(self, body: Any, query: Any) -> dict[str, Any]:
        def stop(inst: FakeInstance, item: Any) -> dict[str, Any]:
            prev = self._stop(inst, bool(item.force), item.drain_timeout_ms or 0)
            return {"state": inst.state, "previous_state": prev}

        return self._each_instance(body, stop)

    def _delete(self, inst: FakeInstance) -> str:
        prev = inst.state
        if inst.state not in ("stopped",):
            self._stop(inst, True, 0)
        for vid, _ in inst.volumes:
            if vid in self.volumes and self.volumes[vid].attached_to == inst.uuid:
                self.volumes[vid].attached_to = None
        g = self.groups.get(inst.group or "")
        if g:
            g.instances = [u for u in g.instances if u != inst.uuid]
            if not g.persistent and not g.instances:
                del self.groups[g.uuid]
        del self.instances[inst.uuid]
        self.runner.changed(self)
        self.cond.notify_all()
        return prev

    def op_delete_instances(self, body: Any, query: Any) -> dict[str, Any]:
        return self._each_instance(body, lambda inst, item: {"previous_state": self._delete(inst)})

    def op_delete_instance_by_uuid(self, body: Any, query: Any, uuid: str) -> dict[str, Any]:
        with self.cond:
            inst = self._need(uuid)
            prev = self._delete(inst)
        return self.envelope("instances", [{"status": "success", "uuid": inst.uuid,
                                            "name": inst.name, "previous_state": prev}])

    # ------------------------------------------------------------ volumes
    def op_get_volumes(self, body: Any, query: dict[str, list[str]]) -> dict[str, Any]:
        with self.cond:
            names = query.get("name")
            return self.envelope("volumes", [self.volume_view(v) for v in self.volumes.values()
                                             if not names or v.name in names])

    def op_create_volume(self, body: Any, query: Any) -> dict[str, Any]:
        req: models_gen.CreateVolumeRequest = body
        with self.cond:
            name = req.name or f"vol-{uuidlib.uuid4().hex[:8]}"
            if any(v.name == name for v in self.volumes.values()):
                raise ApiError(409, f"FAKE: a volume named {name} exists")
            if not req.size_mb:
                raise ApiError(400, "FAKE: size_mb is required for a new volume")
            v = FakeVolume(str(uuidlib.uuid4()), name, req.size_mb, _now())
            self.volumes[v.uuid] = v
            self.volume_created(v)
            return self.envelope("volumes", [{"status": "success", "uuid": v.uuid,
                                              "name": v.name, "state": "available"}])

    def op_update_volumes(self, body: Any, query: Any) -> dict[str, Any]:
        items = []
        with self.cond:
            for item in body:
                v = next((x for x in self.volumes.values()
                          if item.uuid == x.uuid or item.name == x.name), None)
                if v is None:
                    items.append({"status": "error", "name": item.name, "error": 404,
                                  "message": "FAKE: no such volume"})
                    continue
                if item.prop != "delete_lock" or item.op != "set":
                    raise ApiError(501, f"FAKE: only delete_lock/set is modelled, not "
                                   f"{item.prop}/{item.op}")
                v.delete_lock = bool(item.value)
                items.append({"status": "success", "uuid": v.uuid, "name": v.name})
        return self.envelope("volumes", items)

    def op_delete_volumes(self, body: Any, query: Any) -> dict[str, Any]:
        items = []
        with self.cond:
            for item in body:
                v = next((x for x in self.volumes.values()
                          if item.uuid == x.uuid or item.name == x.name), None)
                if v is None or v.delete_lock or v.attached_to:
                    why = ("no such volume" if v is None else
                           "delete_lock is set" if v.delete_lock else "attached")
                    items.append({"status": "error", "name": item.name, "error": 409,
                                  "message": f"FAKE: {why}"})
                    continue
                del self.volumes[v.uuid]
                items.append({"status": "success", "uuid": v.uuid, "name": v.name})
        return self.envelope("volumes", items)

    def volume_created(self, v: FakeVolume) -> None:
        """Hook for runners that back volumes with directories."""

    # ------------------------------------------------------------ service groups
    def _new_group(self, name: str | None, services: list[dict[str, Any]], persistent: bool
                   ) -> FakeGroup:
        gid = str(uuidlib.uuid4())
        label = name or f"eph-{gid[:8]}"
        g = FakeGroup(gid, label, f"{label}-{gid[:6]}.{self.metro}.unikraft.app", services,
                      persistent, _now())
        self.groups[gid] = g
        self.runner.changed(self)
        return g

    def op_get_service_groups(self, body: Any, query: dict[str, list[str]]) -> dict[str, Any]:
        with self.cond:
            names = query.get("name")
            return self.envelope("service_groups", [self.group_view(g)
                                                    for g in self.groups.values()
                                                    if not names or g.name in names])

    def op_create_service_group(self, body: Any, query: Any) -> dict[str, Any]:
        req: models_gen.CreateServiceGroupRequest = body
        with self.cond:
            if req.name and any(g.name == req.name for g in self.groups.values()):
                raise ApiError(409, f"FAKE: a service group named {req.name} exists")
            for s in req.services:
                if s.destination_port is None or s.port is None:
                    raise ApiError(400, "FAKE: a service needs port and destination_port")
            g = self._new_group(req.name, [s.model_dump(exclude_none=True)
                                           for s in req.services], persistent=True)
            return self.envelope("service_groups", [self.group_view(g)])

    # ------------------------------------------------------------ helpers for tests
    def routable(self, fqdn: str) -> list[FakeInstance]:
        """Instances the edge may send a new connection for ``fqdn`` to."""
        with self.cond:
            g = next((g for g in self.groups.values() if g.fqdn == fqdn), None)
            if g is None:
                return []
            return [self.instances[u] for u in g.instances
                    if u in self.instances and self.instances[u].state == "running"]

    def group_port(self, fqdn: str, port: int = 443) -> int | None:
        with self.cond:
            for g in self.groups.values():
                if g.fqdn == fqdn:
                    for s in g.services:
                        if s.get("port") == port:
                            return int(s["destination_port"])
        return None

    def ops(self) -> list[str]:
        """The SDK operation of every request received, in order (benchmarks, asserts)."""
        return [r.op for m, p, _ in self.requests for r in [self._route(m, p)[0]] if r]

    @contextlib.contextmanager
    def watching(self) -> Iterator[Callable[[], list[str]]]:
        start = len(self.requests)
        yield lambda: [f"{m} {p}" for m, p, _ in self.requests[start:]]
