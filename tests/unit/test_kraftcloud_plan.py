"""Names, request bodies and the plan (recipes/kraftcloud/plan.py), checked
against the SDK's request models: every body the deploy sends validates with
no unknown field."""

from __future__ import annotations

import pytest
from openfga_release.recipes.kraftcloud.plan import KraftCloudInputError, Seen, Spec, State, plan
from openfga_release.recipes.kraftcloud.retry import RetryPolicy, parse_retry_after
from openfga_release.recipes.server_tuning import pool_size
from unikraft_cloud.api.platform import models_gen as m

from tests.support.ukc_fake import validate_strict

PG = "index.unikraft.io/team/openfga-postgres@sha256:" + "a" * 64
FGA = "index.unikraft.io/team/openfga@sha256:" + "1" * 64


def spec(**kw: object) -> Spec:
    return Spec(openfga_image=FGA, postgres_image=PG, **kw)  # type: ignore[arg-type]


def test_bodies_validate_strictly_against_the_sdk_models() -> None:
    s = spec(domain="fga.example.com")
    validate_strict(m.CreateInstanceRequest, s.postgres_body({"migrator": "a", "app": "b",
                                                              "readonly": "c"}))
    validate_strict(m.CreateInstanceRequest, s.migrate_body("pw"))
    validate_strict(m.CreateInstanceRequest, s.app_body("pw", "k" * 20))
    validate_strict(m.CreateInstanceRequest, s.app_body("pw", "k" * 20, canary=True))
    validate_strict(m.CreateServiceGroupRequest, s.service_group_body())


def test_postgres_is_private_with_its_data_on_the_volume() -> None:
    body = spec().postgres_body(None)
    assert "service_group" not in body
    assert body["volumes"] == [{"name": "openfga-pgdata", "at": "/volume"}]
    assert not any(k.endswith("PASSWORD") for k in body["env"])
    assert spec().postgres_host == "openfga-postgres.internal"
    assert body["hostname"] == "openfga-postgres"


def test_app_has_preshared_keys_no_playground_and_private_datastore() -> None:
    body = spec().app_body("p@ss", "k" * 20)
    env = body["env"]
    assert env["OPENFGA_AUTHN_METHOD"] == "preshared"
    assert env["OPENFGA_PLAYGROUND_ENABLED"] == "false"
    assert "@openfga-postgres.internal:5432/" in env["OPENFGA_DATASTORE_URI"]
    assert "p%40ss" in env["OPENFGA_DATASTORE_URI"]  # percent-encoded
    assert body["service_group"] == {"name": "openfga"}
    assert body["scale_to_zero"]["policy"] == "idle"


def test_app_settings_fit_its_memory_and_two_instances_at_once() -> None:
    env = spec(openfga_memory_mb=1024).app_body("pw", "k" * 20)["env"]
    assert env["GOMEMLIMIT"] == "819MiB" and env["GOGC"] == "200"
    # The app and its canary (an upgrade) share PostgreSQL's connections.
    assert env["OPENFGA_DATASTORE_MAX_OPEN_CONNS"] == str(pool_size(replicas=2))
    assert spec(openfga_memory_mb=128).app_body("pw", "k" * 20)["env"]["GOMEMLIMIT"] == "102MiB"
    with pytest.raises(KraftCloudInputError, match="OpenFGA 128 MiB"):
        spec(openfga_memory_mb=127)
    assert spec().rev != spec(openfga_memory_mb=1024).rev  # new settings: a new instance


def test_migrate_is_one_shot_as_the_migrator() -> None:
    body = spec().migrate_body("pw")
    assert body["restart_policy"] == "never" and body["args"][:2] == ["/usr/bin/openfga",
                                                                       "migrate"]
    assert body["args"][body["args"].index("--timeout") + 1] == "30s"
    assert "openfga_migrator:pw@" in body["env"]["OPENFGA_DATASTORE_URI"]


def test_rev_changes_with_the_image_only() -> None:
    assert spec().rev == spec().rev
    assert spec().rev != Spec(openfga_image=FGA.replace("1", "2"), postgres_image=PG).rev


def test_unpinned_images_and_bad_names_are_refused() -> None:
    with pytest.raises(KraftCloudInputError, match="digest"):
        Spec(openfga_image="openfga:latest", postgres_image=PG)
    with pytest.raises(KraftCloudInputError, match="DNS label"):
        spec(name="Bad_Name")


def test_plan_from_nothing_and_from_a_running_deploy() -> None:
    s = spec()
    fresh = [(a.verb, a.kind) for a in plan(s, State())]
    assert fresh == [("create", "volume"), ("create", "postgres"), ("create", "service-group"),
                     ("run", "migrate"), ("create", "openfga")]
    tags = tuple(s.tags("openfga"))
    running = State(
        instances=(Seen(s.postgres, "u1", "running", PG, tuple(s.tags("postgres"))),
                   Seen(s.app, "u2", "running", FGA, tags, "openfga")),
        volumes=(s.volume,), service_groups={"openfga": "x.fra.unikraft.app"})
    assert {a.verb for a in plan(s, running)} == {"keep"}
    newer = Spec(openfga_image=FGA.replace("1", "2"), postgres_image=PG)
    up = [(a.verb, a.kind, a.name) for a in plan(newer, running)]
    assert up[-4:] == [("run", "migrate", newer.migrate), ("run", "canary", newer.canary),
                       ("create", "openfga", newer.app), ("remove", "openfga", s.app)]


def test_retry_after_and_backoff() -> None:
    p = RetryPolicy(base_delay=0.5, max_delay=4, max_retry_after=10)
    assert parse_retry_after("3") == 3.0
    assert parse_retry_after("Wed, 21 Oct 2015 07:28:00 GMT", now=1445412470.0) == 10.0
    assert p.delay(1, 429, 3.0) == 3.0 and p.delay(1, 429, 99.0) == 10.0
    assert [p.delay(n, 503, None) for n in (1, 2, 3, 4, 5)] == [0.5, 1, 2, 4, 4]
