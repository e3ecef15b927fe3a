"""The server settings we ship: pool sizes that fit PostgreSQL, caches, throttling."""

from __future__ import annotations

import pytest
from openfga_release.recipes import server_tuning
from openfga_release.recipes.openfga import server_env
from openfga_release.recipes.postgres import DEFAULT_MAX_CONNECTIONS
from openfga_release.recipes.server_tuning import TuningError, pool_size, tuning_env


def test_the_pool_is_kept_whole_and_sized_for_postgres() -> None:
    env = tuning_env()
    pool = pool_size(DEFAULT_MAX_CONNECTIONS, 1)
    assert env["OPENFGA_DATASTORE_MAX_OPEN_CONNS"] == env["OPENFGA_DATASTORE_MAX_IDLE_CONNS"]
    assert int(env["OPENFGA_DATASTORE_MAX_OPEN_CONNS"]) == pool
    # OpenFGA panics at start when min idle > min open.
    assert int(env["OPENFGA_DATASTORE_MIN_OPEN_CONNS"]) >= int(
        env["OPENFGA_DATASTORE_MIN_IDLE_CONNS"])


@pytest.mark.parametrize("max_connections", [20, 50, 100, 200, 1000])
@pytest.mark.parametrize("replicas", [1, 2, 3, 5])
def test_every_replica_fits_beside_the_reserved_connections(max_connections: int,
                                                            replicas: int) -> None:
    reserved = server_tuning.SUPERUSER_RESERVED + server_tuning.OTHER_ROLES_RESERVED
    try:
        pool = pool_size(max_connections, replicas)
    except TuningError as err:
        assert "raise max_connections" in str(err) and "replicas" in str(err)
        assert (max_connections - reserved) // replicas < server_tuning.MIN_POOL_PER_REPLICA
        return
    assert server_tuning.MIN_POOL_PER_REPLICA <= pool <= server_tuning.MAX_POOL_PER_REPLICA
    assert pool * replicas + reserved <= max_connections


def test_too_many_replicas_are_refused_with_the_numbers() -> None:
    with pytest.raises(TuningError) as err:
        pool_size(50, 20)
    assert "max_connections=50" in str(err.value)
    assert "raise max_connections to at least 88 or run at most 10 replicas" in str(err.value)
    with pytest.raises(TuningError, match="at least one"):
        pool_size(50, 0)
    # Not even one replica fits: only the fix that works is offered.
    with pytest.raises(TuningError) as err:
        pool_size(11, 1)
    assert str(err.value) == (
        "PostgreSQL max_connections=11 leaves 3 connections for 1 OpenFGA replicas, fewer than "
        "4 each: raise max_connections to at least 12")
    with pytest.raises(TuningError, match=r"leaves 0 connections.*at least 16$"):
        pool_size(5, 2)
    assert str(pool_size(12, 1)) == "4"  # the floor itself fits
    assert pool_size() == 32  # one replica on the shipped PostgreSQL (50 connections)
    with pytest.raises(TuningError, match=r"at least 16 or run at most 1 replicas$"):
        pool_size(12, 2)


def test_caches_no_throttling_and_no_pool_for_memory() -> None:
    env = tuning_env(engine="memory")
    assert env["OPENFGA_CHECK_QUERY_CACHE_ENABLED"] == "true"
    assert env["OPENFGA_CHECK_ITERATOR_CACHE_ENABLED"] == "true"
    assert env["OPENFGA_CACHE_CONTROLLER_ENABLED"] == "true"
    assert not any("THROTTL" in k for k in env)  # measured: halves throughput
    assert not any(k.startswith("OPENFGA_DATASTORE_") for k in env)


def test_pools_are_whole_connections() -> None:
    assert [tuning_env(replicas=r)["OPENFGA_DATASTORE_MAX_OPEN_CONNS"] for r in (1, 2, 3, 4)] == [
        "32", "21", "14", "10"]  # (50 - 8) // replicas, at most 32


def test_every_cache_window_is_openfgas_10_seconds() -> None:
    env = tuning_env()
    for key in ("OPENFGA_CHECK_QUERY_CACHE_TTL", "OPENFGA_CHECK_ITERATOR_CACHE_TTL",
                "OPENFGA_CACHE_CONTROLLER_TTL"):
        assert env[key] == "10s"  # docs/consistency.md promises 10 s


def test_server_env_ships_the_tuning_for_its_replicas() -> None:
    env = server_env(replicas=3)
    assert env["OPENFGA_DATASTORE_MAX_OPEN_CONNS"] == str(pool_size(DEFAULT_MAX_CONNECTIONS, 3))
    assert tuning_env().items() <= server_env().items()


def test_bigger_check_cache_shared_iterator_and_a_lazier_collector() -> None:
    env = tuning_env()
    assert env["OPENFGA_CHECK_CACHE_LIMIT"] == "100000"  # 10x OpenFGA's 10 000
    assert env["OPENFGA_SHARED_ITERATOR_ENABLED"] == "true"
    assert env["GOGC"] == "200"
    assert "GOMEMLIMIT" not in env  # no memory limit known: Go's default (none)
    assert "OPENFGA_LIST_OBJECTS_ITERATOR_CACHE_ENABLED" not in env  # no gain measured


@pytest.mark.parametrize(("memory_mib", "limit"), [
    (128, "102MiB"), (512, "409MiB"), (1024, "819MiB"), (4096, "3276MiB"),
])
def test_go_memory_limit_is_four_fifths_of_the_servers(memory_mib: int, limit: str) -> None:
    assert tuning_env(memory_mib=memory_mib)["GOMEMLIMIT"] == limit
    assert server_env(memory_mib=memory_mib)["GOMEMLIMIT"] == limit


def test_too_little_memory_for_openfga_is_refused_with_the_fix() -> None:
    assert server_tuning.MIN_MEMORY_MIB == 128
    with pytest.raises(TuningError) as err:
        tuning_env(memory_mib=127)
    assert str(err.value) == (
        "OpenFGA memory 127 MiB is below 128 MiB, less than the server needs idle: give it "
        "at least 512 MiB (measured peak under load: 443 MiB)")
