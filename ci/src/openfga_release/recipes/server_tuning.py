"""The performance settings we ship for ``openfga run``, chosen by measurement.

Plain module (no dagger import); :func:`openfga.server_env` adds
:func:`tuning_env` to every server the pipeline starts. The comparison that
chose them (OpenFGA's and PostgreSQL's defaults against these, and the memory
engine, in one run on one machine) is ``benchmarks/bench_defaults.py``, and
what each setting buys on its own is ``benchmarks/bench_settings.py``; their
tables are in ``benchmarks/README.md``.

OpenFGA v1.22.1's defaults (pkg/server/config/config.go, cmd/run/flags.go) and
why we change them:

* **Connection pool**: max open 30 per replica whatever the database allows,
  so 2 replicas on our PostgreSQL (max_connections 50) can exhaust it and lock
  out migrate and backups. We size it from ``max_connections``
  (recipes/postgres.py) shared by the replicas, after the superuser's reserved
  slots and the other roles' (migrate, read-only, backups), and keep it whole
  when idle (max idle = max open, min 4 open): measured, the idle limit cost
  nothing either way (OpenFGA's PostgreSQL driver is a pgx pool; PostgreSQL saw
  25-33 new sessions per run with 10 or 32 idle), so the pool is about the bound.
* **Check query cache** and **check iterator cache** (off by default): cache
  sub-problem answers and datastore iterators for ``CACHE_TTL``, with the
  **cache controller** on, which drops a store's cached entries once a newer
  write is seen (checked at most every ``CACHE_CONTROLLER_TTL``). Measured: a
  repeated check's p50 went from 5.3 ms to 1.5 ms (the memory engine: 1.3 ms).
  Trade-off: an answer may be up to the TTL stale
  after a write (less with the controller); a client that must see its own
  write asks for ``consistency: HIGHER_CONSISTENCY`` on that request, which
  bypasses the caches (docs/consistency.md).
* **Cache size**: ``CACHE_LIMIT`` entries instead of OpenFGA's 10 000, which
  a few seconds of traffic fill and churn (the iterator and query caches share
  it).
* **Shared iterator** (off by default): concurrent requests that need the same
  datastore read share one query; it roughly halved PostgreSQL's CPU per
  ListObjects answer. Same trade-off as the caches (a request may join a read
  started up to 10 s earlier) and the same bypass (``HIGHER_CONSISTENCY``).
* **Go's garbage collector**: ``GOGC=200`` (Go's default is 100) halves how
  often it runs (about 10 % of OpenFGA's CPU in a profile), and, where the memory
  limit is known (Kubernetes, KraftCloud), ``GOMEMLIMIT`` at
  ``GO_MEMORY_SHARE`` of it makes the collector work harder before the kernel's
  OOM killer would strike. Peak RSS under load with all of the above: 427-443
  MiB, hence 512 MiB as the default memory (at 256 MiB, a 200 MiB soft limit
  made the collector run so often that batch-check lost about 30 %).
* **ListObjects iterator cache** stays off (OpenFGA's default): no gain
  measured (ListObjects 95 -> 71 requests/s at 20k tuples in one run, 590
  against 594 in another, within noise).
* **Dispatch throttling** stays off (OpenFGA's default): measured here with the
  benchmark's multi-hop model, turning it on for Check and ListObjects halved
  throughput in two runs (check 109 -> 61 and 160 -> 64 requests/s), since
  ordinary requests of a nested model pass its threshold of 100 dispatches.
* **Timeouts**: OpenFGA's (request 3 s, ListObjects/ListUsers deadline 3 s)
  are kept: they bound a request, they are not a speed knob.
"""

from __future__ import annotations

from .errors import InputError
from .postgres import (
    DEFAULT_MAX_CONNECTIONS,
    MIN_POOL_PER_REPLICA,
    OTHER_ROLES_RESERVED,
    SUPERUSER_RESERVED,
)

MAX_POOL_PER_REPLICA = 32  # more gains nothing on small machines and costs PostgreSQL memory
MIN_IDLE = 4  # kept open while idle, so a quiet server answers the first burst warm
CACHE_TTL = "10s"  # OpenFGA's default TTL; the controller invalidates sooner on writes
CACHE_CONTROLLER_TTL = "10s"
CACHE_LIMIT = 100_000  # entries, shared by both check caches (OpenFGA's default: 10 000)
GOGC = 200  # Go's default is 100: the collector runs half as often
GO_MEMORY_SHARE = 0.8  # GOMEMLIMIT: this share of the memory limit, the rest for non-heap memory
MIN_MEMORY_MIB = 128  # OpenFGA held 95-110 MiB resident after load here: less cannot work


class TuningError(InputError):
    """Replicas and PostgreSQL's max_connections that cannot fit a pool each, or too little
    memory for the server."""


def pool_size(max_connections: int = DEFAULT_MAX_CONNECTIONS, replicas: int = 1) -> int:
    """Connections one OpenFGA replica may open, so that all replicas fit PostgreSQL."""
    if replicas < 1:
        raise TuningError(f"replicas {replicas} is below 1: run at least one OpenFGA replica")
    usable = max_connections - SUPERUSER_RESERVED - OTHER_ROLES_RESERVED
    per_replica = min(MAX_POOL_PER_REPLICA, usable // replicas)
    if per_replica < MIN_POOL_PER_REPLICA:
        needed = replicas * MIN_POOL_PER_REPLICA + SUPERUSER_RESERVED + OTHER_ROLES_RESERVED
        fits = usable // MIN_POOL_PER_REPLICA
        fewer = f" or run at most {fits} replicas" if fits >= 1 else ""
        raise TuningError(
            f"PostgreSQL max_connections={max_connections} leaves {max(usable, 0)} connections "
            f"for {replicas} OpenFGA replicas, fewer than {MIN_POOL_PER_REPLICA} each: raise "
            f"max_connections to at least {needed}{fewer}"
        )
    return per_replica


def go_memory_limit(memory_mib: int) -> str:
    """``GOMEMLIMIT`` for a server limited to ``memory_mib`` MiB (a soft limit for Go's heap)."""
    if memory_mib < MIN_MEMORY_MIB:
        raise TuningError(
            f"OpenFGA memory {memory_mib} MiB is below {MIN_MEMORY_MIB} MiB, less than the "
            "server needs idle: give it at least 512 MiB (measured peak under load: 443 MiB)"
        )
    return f"{int(memory_mib * GO_MEMORY_SHARE)}MiB"


def tuning_env(
    *, max_connections: int = DEFAULT_MAX_CONNECTIONS, replicas: int = 1,
    engine: str = "postgres", memory_mib: int | None = None,
) -> dict[str, str]:
    """Settings that differ from OpenFGA's and Go's defaults: the pool only on postgres,
    ``GOMEMLIMIT`` only when the server's memory limit (``memory_mib``) is known."""
    env = {
        "OPENFGA_CHECK_QUERY_CACHE_ENABLED": "true",
        "OPENFGA_CHECK_QUERY_CACHE_TTL": CACHE_TTL,
        "OPENFGA_CHECK_ITERATOR_CACHE_ENABLED": "true",
        "OPENFGA_CHECK_ITERATOR_CACHE_TTL": CACHE_TTL,
        "OPENFGA_CHECK_CACHE_LIMIT": str(CACHE_LIMIT),
        "OPENFGA_CACHE_CONTROLLER_ENABLED": "true",
        "OPENFGA_CACHE_CONTROLLER_TTL": CACHE_CONTROLLER_TTL,
        "OPENFGA_SHARED_ITERATOR_ENABLED": "true",
        "GOGC": str(GOGC),
    }
    if memory_mib is not None:
        env["GOMEMLIMIT"] = go_memory_limit(memory_mib)
    if engine == "postgres":
        pool = pool_size(max_connections, replicas)
        env |= {
            "OPENFGA_DATASTORE_MAX_OPEN_CONNS": str(pool),
            "OPENFGA_DATASTORE_MAX_IDLE_CONNS": str(pool),
            # OpenFGA refuses to start (panics) when min idle exceeds min open.
            "OPENFGA_DATASTORE_MIN_OPEN_CONNS": str(min(MIN_IDLE, pool)),
            "OPENFGA_DATASTORE_MIN_IDLE_CONNS": str(min(MIN_IDLE, pool)),
        }
    return env
