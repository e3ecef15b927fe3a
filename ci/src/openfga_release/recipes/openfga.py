"""``openfga run`` on least privilege: its environment and its readiness.

Plain module (no dagger import). ``test-e2e`` starts the openfga-image as a
service with :func:`server_env` plus three secrets (:data:`SECRET_ENV`: the
datastore URI of ``openfga_app``, maybe its password, the preshared keys); the
integration tests start the real binary with the same environment through
:class:`LocalServer` and wait for it with :func:`wait_ready`.

Facts from OpenFGA v1.22.1, checked with the binary: every setting has an
``OPENFGA_*`` variable (cmd/run/flags.go); the playground is off unless
enabled and makes the server panic with any authn but ``none``; the ports open
only once the database answers (it logs "waiting for database" and retries for
60 s, wrong passwords included, then exits); ``GET /healthz`` needs no key and
answers ``{"status":"SERVING"}`` only at schema revision 4 or later, else
HTTP 500 ``status:NOT_SERVING`` (revision 1-3) or HTTP 500 with the SQL error
(no ``goose_db_version`` at all, which openfga_app may not create), while the
process keeps running.
"""

from __future__ import annotations

import json
import re
import secrets
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import httpx

from .errors import StepError
from .image import BINARY_PATH
from .migrate import PASSWORD_ENV, URI_ENV, explain_failure, redact
from .postgres import DEFAULT_MAX_CONNECTIONS
from .server_tuning import tuning_env

HTTP_PORT = 8080
GRPC_PORT = 8081
METRICS_PORT = 2112
# What the image exposes (and a platform routes): the one list of OpenFGA's ports.
PORTS = {HTTP_PORT: "HTTP API", GRPC_PORT: "gRPC API", METRICS_PORT: "Prometheus metrics"}
PRESHARED_KEYS_ENV = "OPENFGA_AUTHN_PRESHARED_KEYS"
# Set from secrets only (with_secret_variable), never as plain env.
SECRET_ENV = (URI_ENV, PASSWORD_ENV, PRESHARED_KEYS_ENV)
READY_TIMEOUT = 60.0  # seconds; OpenFGA itself retries the database for 60 s
NOT_SERVING_GRACE = 10.0  # seconds of steady NOT_SERVING before we call it a schema problem
RUN_MIGRATE = (
    "OpenFGA runs but reports NOT_SERVING: its database schema is missing or older than "
    "revision 4. Run migrate first (dagger call migrate ..., as openfga_migrator), then "
    "start the server again"
)


class ServerNotReady(StepError):
    """The server did not become ready; the message says why and what to do."""


def server_command(binary: str = BINARY_PATH) -> list[str]:
    return [binary, "run"]


def server_env(
    *,
    engine: str = "postgres",
    host: str = "0.0.0.0",  # noqa: S104 (a service listens on its container's interfaces)
    http_port: int = HTTP_PORT,
    grpc_port: int = GRPC_PORT,
    metrics_port: int = METRICS_PORT,
    log_level: str = "info",
    replicas: int = 1,
    max_connections: int = DEFAULT_MAX_CONNECTIONS,
    memory_mib: int | None = None,
) -> dict[str, str]:
    """Plain (non-secret) env for ``openfga run``: preshared-key authn, no playground, JSON logs,
    and the measured performance settings (recipes/server_tuning.py: the datastore pool sized
    for ``replicas`` sharing PostgreSQL's ``max_connections``, caches, Go's collector sized
    for the server's memory limit ``memory_mib`` when known)."""
    return {
        **tuning_env(max_connections=max_connections, replicas=replicas, engine=engine,
                     memory_mib=memory_mib),
        "OPENFGA_DATASTORE_ENGINE": engine,
        "OPENFGA_AUTHN_METHOD": "preshared",
        "OPENFGA_PLAYGROUND_ENABLED": "false",
        "OPENFGA_LOG_FORMAT": "json",
        "OPENFGA_LOG_LEVEL": log_level,
        "OPENFGA_HTTP_ADDR": f"{host}:{http_port}",
        "OPENFGA_GRPC_ADDR": f"{host}:{grpc_port}",
        "OPENFGA_METRICS_ADDR": f"{host}:{metrics_port}",
    }


def new_preshared_key() -> str:
    """A random key; URL-safe base64 has no comma or space, which would split the list."""
    return secrets.token_urlsafe(32)


def preshared_keys_value(keys: Sequence[str]) -> str:
    """The value of :data:`PRESHARED_KEYS_ENV` (comma-separated), after checking each key."""
    if not keys:
        raise ValueError("preshared-key authn needs at least one key")
    for i, key in enumerate(keys, 1):
        if len(key) < 16 or any(c.isspace() or c == "," for c in key):
            raise ValueError(
                f"preshared key #{i} is shorter than 16 characters or holds a comma or space "
                "(OpenFGA splits the list on them); generate one with new_preshared_key()"
            )
    return ",".join(keys)


@dataclass(frozen=True)
class Health:
    state: str  # SERVING, NOT_SERVING, ERROR (an error answer) or DOWN (no answer)
    detail: str = ""  # the server's message, or the connection error


def health(client: httpx.Client, url: str) -> Health:
    """One ``GET /healthz``. NOT_SERVING comes as HTTP 500 ``status:NOT_SERVING``."""
    try:
        resp = client.get(f"{url}/healthz")
    except httpx.HTTPError as exc:
        return Health("DOWN", f"{type(exc).__name__}: {exc}")
    try:
        body = resp.json()
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    if body.get("status") == "SERVING":
        return Health("SERVING")
    message = str(body.get("message") or resp.text)[:500]
    return Health("NOT_SERVING" if "NOT_SERVING" in message else "ERROR", message)


def explain_not_ready(answer: Health, log: str = "") -> str:
    """Why the server does not serve, and the fix, from its /healthz answer and its log."""
    text = answer.detail + "\n" + _error_lines(log)
    # NOT_SERVING with "datastore requires migrations" (revision < 4), or no
    # goose_db_version table at all (never migrated; the app role may not create it).
    if re.search(r"datastore requires migrations|goose_db_version\W+does not exist", text):
        revision = re.search(r"at revision '(\d+)'", text)
        found = f" (found revision {revision.group(1)})" if revision else ""
        return RUN_MIGRATE + found
    if answer.state == "NOT_SERVING":
        return RUN_MIGRATE
    if answer.state == "DOWN" and "waiting for database" in log:
        return (
            "it is still waiting for its database (it logs 'waiting for database' and retries "
            "for 60 s before exiting): check that PostgreSQL runs and that the datastore URI "
            "names the right host, port, role and password"
        )
    if answer.state == "DOWN":
        return (
            f"nothing answered /healthz ({answer.detail}): check the URL and port (HTTP is "
            f"{HTTP_PORT}) and that the server started"
        )
    return explain_failure(text, "openfga run")


def wait_ready(
    url: str,
    *,
    timeout: float = READY_TIMEOUT,
    exited: Callable[[], int | None] = lambda: None,
    logs: Callable[[], str] = lambda: "",
    not_serving_grace: float = NOT_SERVING_GRACE,
    redacted: Sequence[str] = (),
) -> None:
    """Return once ``url`` reports SERVING; else :class:`ServerNotReady`, within ``timeout``.

    A steady error answer for ``not_serving_grace`` seconds fails early (an
    unmigrated schema does not fix itself). ``exited`` gives the process's exit
    code once it ended; ``logs`` its output, used only to explain a failure,
    with the ``redacted`` values and any URI password removed.
    """
    deadline = time.monotonic() + timeout
    failing_since: float | None = None
    with httpx.Client(timeout=2.0) as client:
        while True:
            code = exited()
            if code is not None:
                why = explain_failure(_error_lines(redact(logs(), redacted)), "openfga run")
                raise ServerNotReady(f"openfga run exited with code {code}: {why}")
            answer = health(client, url)
            now = time.monotonic()
            if answer.state == "SERVING":
                return
            if answer.state == "DOWN":
                failing_since = None
            elif failing_since is None:
                failing_since = now
            steady = failing_since is not None and now - failing_since >= not_serving_grace
            if now >= deadline or steady:
                why = explain_not_ready(answer, redact(logs(), redacted))
                raise ServerNotReady(f"OpenFGA at {url} is not ready ({answer.state}): {why}")
            time.sleep(0.2)


def _error_lines(log: str) -> str:
    """Errors of a JSON log (and plain lines: panics), not the config dump or TLS notices."""
    out = []
    for line in log.splitlines():
        try:
            rec = json.loads(line)
        except ValueError:
            out.append(line)
            continue
        if not isinstance(rec, dict):
            continue
        level = rec.get("level")
        # warn carries "datastore is not ready" with its status, but also benign notices.
        detailed = "status" in rec or "error" in rec
        if level in ("error", "fatal", "panic") or (level == "warn" and detailed):
            out.append(" ".join(str(rec.get(k, "")) for k in ("msg", "error", "status")))
    return "\n".join(out)
