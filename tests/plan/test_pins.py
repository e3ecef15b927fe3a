"""Python requirements of the helper containers: pinned, and httpx always with sniffio."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from openfga_release import kraftcloud, kubernetes, openfga, verify
from openfga_release.recipes import refs

REPO = Path(__file__).resolve().parents[2]
CONTAINERS = {
    "smoke": tuple(openfga.SMOKE_REQUIREMENTS),
    "verify": verify.VERIFY_REQUIREMENTS,
    "bench": verify.BENCH_REQUIREMENTS,
    "kubernetes": kubernetes.PIP_PACKAGES,
    "kraftcloud": kraftcloud.PIP_PACKAGES,
}


@pytest.mark.parametrize("name", sorted(CONTAINERS))
def test_each_helper_pins_every_requirement_and_installs_httpx_with_sniffio(name: str) -> None:
    reqs = CONTAINERS[name]
    assert all("==" in r for r in reqs), reqs
    # Without sniffio, httpcore 1.0.9 re-runs a failed import on every async request.
    assert set(refs.HTTPX) <= set(reqs)


def test_the_dev_environment_pins_the_same_httpx_and_sniffio_as_the_containers() -> None:
    dev = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    assert set(refs.HTTPX) <= set(dev["dev"])
    assert {r.split("==")[0] for r in refs.HTTPX} == {"httpx", "sniffio"}
