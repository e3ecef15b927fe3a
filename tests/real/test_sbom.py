"""SBOMs and the release directory for the real OpenFGA binary: valid, complete, reproducible.

standalone/sbom.py runs as the pipeline runs it (a lone script beside the
pinned CycloneDX library) on ``go version -m -json`` of the real OpenFGA
release binary; the documents are validated against the official CycloneDX 1.6
JSON schema by the library's strict validator, and the release directory
(``checksums.txt``, ``release.json``) is written twice by the pipeline's
command and compared byte for byte.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from openfga_release.recipes import release as rel
from openfga_release.recipes.releases import DEFAULT_VERSION, RELEASES

from tests.support.gobuild_local import ensure_openfga
from tests.support.oci_layout import recipes_tree, write_layout

pytestmark = pytest.mark.integration

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = ROOT / "ci" / "src" / "openfga_release" / "standalone" / "sbom.py"
DATE = RELEASES[DEFAULT_VERSION].date


@pytest.fixture(scope="module")
def binary() -> Path:
    return ensure_openfga()


@pytest.fixture(scope="module")
def buildinfo(binary: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bi") / "bi.json"
    proc = subprocess.run(["go", "version", "-m", "-json", str(binary)], capture_output=True,
                          text=True, check=True)  # fmt: skip
    out.write_text(proc.stdout)
    return out


def sbom(*args: str) -> str:
    """The script alone (cwd elsewhere, nothing of the package importable)."""
    proc = subprocess.run([sys.executable, str(SCRIPT), *args], capture_output=True, text=True,
                          cwd="/")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return proc.stdout


def binary_sbom(binary: Path, buildinfo: Path) -> str:
    return sbom("binary", "--name", "openfga", "--version", DEFAULT_VERSION, "--date", DATE,
                "--platform", "linux/amd64", "--buildinfo", str(buildinfo),
                "--sha256-of", str(binary))  # fmt: skip


def valid(text: str) -> dict:
    error = JsonStrictValidator(SchemaVersion.V1_6).validate_str(text)
    assert error is None, error
    return json.loads(text)


def test_binary_sbom_lists_openfgas_modules_and_is_reproducible(binary, buildinfo) -> None:
    first, second = binary_sbom(binary, buildinfo), binary_sbom(binary, buildinfo)
    assert first == second  # no clock, no random serial
    doc = valid(first)
    info = json.loads(buildinfo.read_text())
    app = doc["metadata"]["component"]
    assert app["name"] == "github.com/openfga/openfga" and app["version"] == DEFAULT_VERSION
    sha = hashlib.sha256(binary.read_bytes()).hexdigest()
    assert app["hashes"] == [{"alg": "SHA-256", "content": sha}]
    assert doc["metadata"]["timestamp"].startswith(DATE[:19])
    modules = {c["name"]: c["version"] for c in doc["components"] if c["name"] != "stdlib"}
    expected = {(d.get("Replace") or d)["Path"]: (d.get("Replace") or d)["Version"]
                for d in info["Deps"]}  # fmt: skip
    assert modules == expected and len(modules) > 50
    assert "github.com/jackc/pgx/v5" in modules  # the PostgreSQL driver OpenFGA links
    purls = [c["purl"] for c in doc["components"]]
    assert all(p.startswith("pkg:golang/") for p in purls)
    assert {c["name"]: c["version"] for c in doc["components"]}["stdlib"] == (
        info["GoVersion"].removeprefix("go")
    )
    # The dependency graph: the binary depends on every module it links.
    root = next(d for d in doc["dependencies"] if d["ref"] == app["bom-ref"])
    assert len(root["dependsOn"]) == len(doc["components"])


def test_image_sboms_are_valid_and_reproducible(binary, buildinfo) -> None:
    digest = "ab" * 32
    args = ["image", "--name", "ghcr.io/acme/openfga", "--version", DEFAULT_VERSION, "--date", DATE,
            "--platform", "linux/amd64", "--sha256", digest, "--buildinfo", str(buildinfo),
            "--binary-sha256-of", str(binary)]  # fmt: skip
    first = sbom(*args)
    assert first == sbom(*args)
    doc = valid(first)
    assert doc["metadata"]["component"]["type"] == "container"
    assert any(c["name"] == "github.com/openfga/openfga" for c in doc["components"])
    # PostgreSQL's image: its Debian packages, from a real dpkg status file (this machine's).
    status = Path("/var/lib/dpkg/status")
    pg = valid(sbom("image", "--name", "ghcr.io/acme/openfga-postgres", "--version",
                    DEFAULT_VERSION, "--date", DATE, "--platform", "linux/amd64",
                    "--sha256", digest, "--dpkg-status", str(status)))  # fmt: skip
    debs = [c for c in pg["components"] if c["purl"].startswith("pkg:deb/debian/")]
    assert any(c["name"] == "libc6" for c in debs) and len(debs) > 20


def test_an_invalid_document_is_refused(tmp_path: Path) -> None:
    info = tmp_path / "bi.json"
    info.write_text(json.dumps({"GoVersion": "go1.26.8", "Main": {"Path": "x"}, "Deps": []}))
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "binary", "--name", "x", "--version", "v1.0.0", "--date",
         DATE, "--buildinfo", str(info), "--sha256", "not-a-sha"],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 2 and "does not validate" in proc.stderr


def run_release(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    env = {"PYTHONPATH": str(recipes_tree(tmp / "pythonpath")), "PATH": "/usr/bin:/bin"}
    return subprocess.run([sys.executable, "-m", "openfga_release.recipes.release", *args],
                          env=env, capture_output=True, text=True)  # fmt: skip


def test_dist_checksums_and_manifest_are_reproducible(tmp_path: Path, binary, buildinfo) -> None:
    """The pipeline's `images` and `finalize` commands, twice on the same inputs."""
    for name in ("openfga", "postgres"):
        write_layout(tmp_path / "layouts" / name, {
            "linux/amd64": {"usr/bin/openfga": b"amd64-" + name.encode()},
            "linux/arm64": {"usr/bin/openfga": b"arm64-" + name.encode()},
        })  # fmt: skip
    layouts = [f"{n}={tmp_path / 'layouts' / n}" for n in ("openfga", "postgres")]
    images = run_release(tmp_path, "images", "--address", "ghcr.io", "--namespace", "acme",
                         "--version", DEFAULT_VERSION, *layouts)  # fmt: skip
    assert images.returncode == 0, images.stderr
    (tmp_path / "images.json").write_text(images.stdout)
    outputs = []
    for run in ("one", "two"):
        dist = tmp_path / run / "dist"
        dist.mkdir(parents=True)
        for platform in ("linux/amd64", "linux/arm64"):
            shutil.copy(binary, dist / rel.binary_name(DEFAULT_VERSION, platform))
            (dist / rel.binary_sbom_name(DEFAULT_VERSION, platform)).write_text(
                binary_sbom(binary, buildinfo)
            )
        done = run_release(tmp_path, "finalize", str(dist), "--version", DEFAULT_VERSION,
                           "--date", DATE, "--images", str(tmp_path / "images.json"))  # fmt: skip
        assert done.returncode == 0, done.stderr
        outputs.append({p.name: p.read_bytes() for p in dist.iterdir()})
    assert outputs[0] == outputs[1]
    checksums = outputs[0]["checksums.txt"].decode()
    # sha256sum -c accepts it: goreleaser's format.
    check = subprocess.run(["sha256sum", "-c", "checksums.txt"], cwd=tmp_path / "one" / "dist",
                           capture_output=True, text=True)  # fmt: skip
    assert check.returncode == 0, check.stdout + check.stderr
    assert checksums.splitlines() == sorted(
        checksums.splitlines(), key=lambda line: line.split()[1]
    )
    manifest = json.loads(outputs[0]["release.json"])
    assert (
        manifest["checksums"]["sha256"] == hashlib.sha256(outputs[0]["checksums.txt"]).hexdigest()
    )
    assert set(manifest["artifacts"]) == set(outputs[0]) - {"checksums.txt", "release.json"}
    assert manifest["images"]["openfga"]["digest_ref"].startswith("ghcr.io/acme/openfga@sha256:")
    assert sorted(manifest["images"]["postgres"]["platforms"]) == ["linux/amd64", "linux/arm64"]
    assert manifest["published"] is False


def test_batch_gives_the_same_documents_in_one_process(tmp_path: Path, binary, buildinfo) -> None:
    """The pipeline's form (`sbom.py --batch jobs.json`): same bytes as one run per document."""
    out = tmp_path / "sboms"
    out.mkdir()
    common = ["--version", DEFAULT_VERSION, "--date", DATE, "--platform", "linux/amd64",
              "--buildinfo", str(buildinfo)]  # fmt: skip
    jobs = [
        ["binary", "--name", "openfga", *common, "--sha256-of", str(binary),
         "--output", str(out / "bin.cdx.json")],
        ["image", "--name", "ghcr.io/acme/openfga", *common, "--sha256", "cd" * 32,
         "--binary-sha256-of", str(binary), "--output", str(out / "img.cdx.json")],
    ]  # fmt: skip
    (tmp_path / "jobs.json").write_text(json.dumps(jobs))
    sbom("--batch", str(tmp_path / "jobs.json"))
    assert (out / "bin.cdx.json").read_text() == binary_sbom(binary, buildinfo)
    valid((out / "img.cdx.json").read_text())
