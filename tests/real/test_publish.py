"""The publish run, for real: distribution's registry v3 on loopback, crane, cosign.

``python -m openfga_release.recipes.release publish`` is what the pipeline runs
in its container; here it runs with crane and cosign built from the Go module
proxy at the versions the pipeline pins, against a registry that requires a
password, pushing multi-platform OCI layouts written locally.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from openfga_release.recipes import publish as pub
from openfga_release.recipes import release as rel
from openfga_release.recipes import sign

from tests.support.oci_layout import recipes_tree, write_layout
from tests.support.registry_local import LocalRegistry
from tests.support.tools import ensure_go_tool

pytestmark = pytest.mark.integration

USER, PASSWORD = "ci-bot", "pw with spaces & $ymbols"
KEY_PASSWORD = "key pass phrase"


@pytest.fixture(scope="module")
def tools() -> dict[str, str]:
    return {"crane": str(ensure_go_tool("crane")), "cosign": str(ensure_go_tool("cosign"))}


@pytest.fixture(scope="module")
def registry(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LocalRegistry]:
    with LocalRegistry(tmp_path_factory.mktemp("registry"), USER, PASSWORD) as reg:
        yield reg


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory, tools: dict[str, str]) -> dict[str, str]:
    """A cosign key pair generated here (password from the environment, as in CI)."""
    work = tmp_path_factory.mktemp("keys")
    env = dict(os.environ, COSIGN_PASSWORD=KEY_PASSWORD)
    subprocess.run([tools["cosign"], "generate-key-pair"], cwd=work, env=env, check=True,
                   capture_output=True)  # fmt: skip
    return {
        "private": (work / "cosign.key").read_text(),
        "public": str(work / "cosign.pub"),
    }


def layout(path: Path, marker: bytes) -> Path:
    write_layout(
        path,
        {
            "linux/amd64": {"usr/bin/openfga": b"amd64 " + marker},
            "linux/arm64": {"usr/bin/openfga": b"arm64 " + marker},
        },
    )
    return path


def sbom_file(path: Path, platform: str) -> str:
    doc = {"bomFormat": "CycloneDX", "specVersion": "1.6", "version": 1,
           "metadata": {"component": {"type": "container", "name": platform}}}  # fmt: skip
    path.write_text(json.dumps(doc))
    return str(path)


def run_cli(
    request: dict, work: Path, tools: dict, keys: dict | None
) -> subprocess.CompletedProcess:
    """The pipeline's command, with only secrets in the environment."""
    req = work / "request.json"
    req.write_text(json.dumps(request))
    env = {
        "PATH": os.environ["PATH"],
        "HOME": str(work),
        "DOCKER_CONFIG": str(work / "docker"),  # a tmpfs in the pipeline
        "PYTHONPATH": str(recipes_tree(work / "pythonpath")),  # as in the container
        rel.USERNAME_ENV: USER,
        rel.PASSWORD_ENV: PASSWORD,
    }
    if keys:
        env[sign.KEY_ENV] = keys["private"]
        env[sign.PASSWORD_ENV] = KEY_PASSWORD
    argv = [
        sys.executable,
        "-m",
        "openfga_release.recipes.release",
        "publish",
        "--request",
        str(req),
    ]
    return subprocess.run(argv, env=env, capture_output=True, text=True, cwd=work)


def request_for(registry: LocalRegistry, layouts: dict[str, Path], tools: dict, **extra) -> dict:
    return {"address": registry.address, "namespace": "acme", "version": "v1.22.1",
            "crane": tools["crane"], "cosign": tools["cosign"],
            "images": {k: str(v) for k, v in layouts.items()}, **extra}  # fmt: skip


def crane(tools: dict, work: Path, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, DOCKER_CONFIG=str(work / "docker"))
    return subprocess.run([tools["crane"], *args], env=env, capture_output=True, text=True)


def test_publish_sign_verify_and_guard(
    tmp_path: Path, registry: LocalRegistry, tools: dict, keys: dict
) -> None:
    layouts = {"openfga": layout(tmp_path / "openfga", b"v1"),
               "postgres": layout(tmp_path / "postgres", b"pg v1")}  # fmt: skip
    expected = {k: rel.layout_index(v) for k, v in layouts.items()}
    sboms = {
        name: {p: sbom_file(tmp_path / f"{name}-{p.replace('/', '_')}.json", p)
               for p in pub.PLATFORMS}
        for name in layouts
    }  # fmt: skip
    before = len(registry.requests())
    proc = run_cli(
        request_for(registry, layouts, tools, latest=True, sign=True, sboms=sboms,
                    public_key=keys["public"]),
        tmp_path, tools, keys,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    trips = len(registry.requests()) - before
    result = json.loads(proc.stdout)
    print(f"\nfirst publish (2 images, 2 platforms, 4 tags, signed, attested, verified): "
          f"{trips} registry requests, commands {result['commands']}")  # fmt: skip
    for name, image in result["images"].items():
        repo = f"{registry.address}/acme/{pub.target(name).repository}"
        # The digest the registry holds is the one computed from the layout before pushing.
        assert image["digest_ref"] == f"{repo}@{expected[name]['digest']}"
        assert image["platforms"] == expected[name]["platforms"]
        assert sorted(image["platforms"]) == ["linux/amd64", "linux/arm64"]
        assert image["tags"] == ["v1.22.1", "v1.22", "v1", "latest"]
        for tag in image["tags"]:
            got = crane(tools, tmp_path, "digest", f"{repo}:{tag}")
            assert got.stdout.strip() == expected[name]["digest"], (tag, got.stderr)
        assert image["signed"] and len(image["attested"]) == 2

    # Same content again: nothing to push, the moving tags re-pointed, still verified.
    again = run_cli(request_for(registry, layouts, tools), tmp_path, tools, None)
    assert again.returncode == 0, again.stderr
    assert all(not i["pushed"] for i in json.loads(again.stdout)["images"].values())

    # Other content under the same release tag: refused, and nothing moved.
    moved = {"openfga": layout(tmp_path / "openfga2", b"v1 rebuilt"),
             "postgres": layouts["postgres"]}  # fmt: skip
    refused = run_cli(request_for(registry, moved, tools), tmp_path, tools, None)
    assert refused.returncode == 1
    assert "is never moved" in refused.stderr and "--force" in refused.stderr
    repo = f"{registry.address}/acme/openfga"
    assert (
        crane(tools, tmp_path, "digest", f"{repo}:v1.22.1").stdout.strip()
        == (expected["openfga"]["digest"])
    )
    assert (
        crane(tools, tmp_path, "digest", f"{repo}:v1").stdout.strip()
        == (expected["openfga"]["digest"])
    )

    # --force re-points it, and says so.
    forced = run_cli(request_for(registry, moved, tools, force=True), tmp_path, tools, None)
    assert forced.returncode == 0, forced.stderr
    out = json.loads(forced.stdout)["images"]["openfga"]
    assert out["forced"] and out["pushed"]
    new_digest = rel.layout_index(moved["openfga"])["digest"]
    assert crane(tools, tmp_path, "digest", f"{repo}:v1.22.1").stdout.strip() == new_digest

    # The re-pointed digest was never signed: verification fails; the signed one passes.
    signing = sign.Signing()
    cosign_env = dict(os.environ, DOCKER_CONFIG=str(tmp_path / "docker"))

    def verify(ref: str) -> subprocess.CompletedProcess:
        argv = sign.verify_argv(tools["cosign"], ref, signing, keys["public"])
        return subprocess.run(argv, env=cosign_env, capture_output=True, text=True)

    assert verify(f"{repo}@{expected['openfga']['digest']}").returncode == 0
    unsigned = verify(f"{repo}@{new_digest}")
    assert unsigned.returncode != 0 and "no signatures found" in unsigned.stderr.lower()


def test_tampered_signature_fails(
    tmp_path: Path, registry: LocalRegistry, tools: dict, keys: dict
) -> None:
    """A signature made with another key, or content swapped under a tag, does not verify."""
    layouts = {
        "openfga": layout(tmp_path / "o", b"tamper"),
        "postgres": layout(tmp_path / "p", b"t"),
    }
    proc = run_cli(
        request_for(registry, layouts, tools, version="v9.0.0", sign=True), tmp_path, tools, keys
    )
    # version is per request: v9.0.0 keeps this test independent of the first.
    assert proc.returncode == 0, proc.stderr
    ref = json.loads(proc.stdout)["images"]["openfga"]["digest_ref"]
    # Another key pair: its public key must not accept our signature.
    other = tmp_path / "other"
    other.mkdir()
    env = dict(os.environ, COSIGN_PASSWORD="x", DOCKER_CONFIG=str(tmp_path / "docker"))
    subprocess.run([tools["cosign"], "generate-key-pair"], cwd=other, env=env, check=True,
                   capture_output=True)  # fmt: skip
    argv = sign.verify_argv(tools["cosign"], ref, sign.Signing(), str(other / "cosign.pub"))
    wrong = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert wrong.returncode != 0
    # Tamper with the signature itself: overwrite the .sig tag with another image.
    digest = ref.split("@")[1]
    sig_tag = f"{ref.split('@')[0]}:{digest.replace(':', '-')}.sig"
    junk = layout(tmp_path / "junk", b"junk")
    pushed = crane(tools, tmp_path, "push", str(junk), sig_tag)
    assert pushed.returncode == 0, pushed.stderr
    argv = sign.verify_argv(tools["cosign"], ref, sign.Signing(), keys["public"])
    tampered = subprocess.run(argv, env=env, capture_output=True, text=True)
    assert tampered.returncode != 0
