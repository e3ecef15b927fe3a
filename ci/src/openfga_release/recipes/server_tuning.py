"""The performance settings we ship for ``openfga run``, chosen by measurement.

Plain module (no dagger import); :func:`openfga.server_env` adds
:func:`tuning_env` to every server the pipeline starts. The comparison that
chose them (OpenFGA's and PostgreSQL's defaults against these, and the memory
engine, in one run on one machine) is ``benchmarks/bench_defaults.py``; its
table is in ``benchmarks/README.md``.

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
* **ListObjects iterator cache** stays off (OpenFGA's default): it looked
  slower in one run (ListObjects 95 -> 71 requests/s at 20k tuples), within
  that machine's noise: no evidence to turn it on.
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
CACHE_LIMIT = 10000  # entries (OpenFGA's default)


class TuningError(InputError):
    """Replicas and PostgreSQL's max_connections that cannot fit a pool each."""


def pool_size(max_connections: int = DEFAULT_MAX_CONNECTIONS, replicas: int = 1) -> int:
    """Connections one OpenFGA replica may open, so that all replicas fit PostgreSQL."""
    if replicas < 1:
        raise TuningError(f"replicas {replicas} is below 1: run at least one OpenFGA replica")
    usable = max_connections - SUPERUSER_RESERVED - OTHER_ROLES_RESERVED
    per_replica = min(MAX_POOL_PER_REPLICA, usable // replicas)
    if per_replica < MIN_POOL_PER_REPLICA:
        fits = max(0, usable // MIN_POOL_PER_REPLICA)
        raise TuningError(
            f"PostgreSQL max_connections={max_connections} leaves {usable} connections for "
            f"{replicas} OpenFGA replicas, fewer than {MIN_POOL_PER_REPLICA} each: raise "
            f"max_connections to at least {replicas * MIN_POOL_PER_REPLICA + SUPERUSER_RESERVED + OTHER_ROLES_RESERVED} "  # noqa: E501
            f"or run at most {fits} replicas"
        )
    return per_replica


def tuning_env(
    *, max_connections: int = DEFAULT_MAX_CONNECTIONS, replicas: int = 1, engine: str = "postgres"
) -> dict[str, str]:
    """``OPENFGA_*`` settings that differ from OpenFGA's defaults (the pool only on postgres)."""
    env = {
        "OPENFGA_CHECK_QUERY_CACHE_ENABLED": "true",
        "OPENFGA_CHECK_QUERY_CACHE_TTL": CACHE_TTL,
        "OPENFGA_CHECK_ITERATOR_CACHE_ENABLED": "true",
        "OPENFGA_CHECK_ITERATOR_CACHE_TTL": CACHE_TTL,
        "OPENFGA_CHECK_CACHE_LIMIT": str(CACHE_LIMIT),
        "OPENFGA_CACHE_CONTROLLER_ENABLED": "true",
        "OPENFGA_CACHE_CONTROLLER_TTL": CACHE_CONTROLLER_TTL,
    }
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
