"""The caches we ship, on the real OpenFGA and PostgreSQL: the trade-off docs/consistency.md
describes, shown. A cached answer can outlive a write for up to the cache TTL; a request
with ``consistency: HIGHER_CONSISTENCY`` sees the write at once.
"""

from __future__ import annotations

from collections.abc import Iterator

import httpx
import pytest
from openfga_release.recipes.openfga import new_preshared_key
from openfga_release.standalone.smoke import MODEL

from tests.support.fga_stack import migrated, openfga_server
from tests.support.gobuild_local import ensure_openfga
from tests.support.net import free_port
from tests.support.pg import running_postgres

pytestmark = pytest.mark.integration

KEY = new_preshared_key()


@pytest.fixture(scope="module")
def api() -> Iterator[httpx.Client]:
    binary = str(ensure_openfga())
    headers = {"Authorization": f"Bearer {KEY}"}
    with (
        running_postgres() as pg,
        openfga_server(binary, KEY, datastore=migrated(binary, pg)) as server,
        httpx.Client(base_url=server.url, headers=headers) as client,
    ):
        yield client


def test_a_cached_answer_until_the_client_asks_for_higher_consistency(api: httpx.Client) -> None:
    store = api.post("/stores", json={"name": "consistency"}).json()["id"]
    try:
        model = api.post(f"/stores/{store}/authorization-models", json=MODEL).json()
        pin = {"authorization_model_id": model["authorization_model_id"]}
        key = {"user": "user:anne", "relation": "viewer", "object": "document:plan"}

        def check(**extra: str) -> bool:
            resp = api.post(f"/stores/{store}/check", json={"tuple_key": key, **pin, **extra})
            resp.raise_for_status()
            return bool(resp.json()["allowed"])

        assert check() is False  # now cached
        api.post(f"/stores/{store}/write",
                 json={"writes": {"tuple_keys": [key]}, **pin}).raise_for_status()
        assert check() is False  # the cached answer, within the TTL: stale
        assert check(consistency="HIGHER_CONSISTENCY") is True  # bypasses the caches
    finally:
        api.delete(f"/stores/{store}")


def test_the_go_runtime_and_the_shared_iterator_take_the_shipped_settings() -> None:
    """OpenFGA's own metrics: the collector settings server_env gives a 512 MiB server, and
    a ListObjects read that went through the shared-iterator layer (absent when it is off)."""
    binary = str(ensure_openfga())
    port = free_port()
    with openfga_server(binary, KEY, engine="memory", memory_mib=512,
                        plain_env={"OPENFGA_METRICS_ADDR": f"127.0.0.1:{port}"}) as server:
        with httpx.Client(base_url=server.url,
                          headers={"Authorization": f"Bearer {KEY}"}) as client:
            store = client.post("/stores", json={"name": "shared-iterator"}).json()["id"]
            client.post(f"/stores/{store}/authorization-models", json=MODEL).raise_for_status()
            client.post(f"/stores/{store}/list-objects", json={
                "type": "document", "relation": "viewer", "user": "user:anne"}).raise_for_status()
        text = httpx.get(f"http://127.0.0.1:{port}/metrics").text
    values = dict(line.rsplit(" ", 1) for line in text.splitlines()
                  if line.startswith(("go_gc_gogc_percent ", "go_gc_gomemlimit_bytes ")))
    assert float(values["go_gc_gogc_percent"]) == 200
    assert float(values["go_gc_gomemlimit_bytes"]) == 409 * 2**20  # 4/5 of 512 MiB
    assert 'openfga_shared_iterator_query_ms_count{method="ListObjects"' in text
