"""The release matrix, tags, the immutable-tag guard, names, checksums and the manifest."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest
from openfga_release.recipes import publish as pub
from openfga_release.recipes import release as rel
from openfga_release.recipes import sign
from openfga_release.recipes.errors import InputError, ReleaseError, StepError

from tests.support.oci_layout import write_layout

DIGEST_A = "sha256:" + "a" * 64
DIGEST_B = "sha256:" + "b" * 64


def test_matrix_is_data_openfga_and_postgres_for_both_arches() -> None:
    assert [r.name for r in pub.MATRIX] == ["openfga", "postgres"]
    for row in pub.MATRIX:
        assert row.platforms == ("linux/amd64", "linux/arm64")


@pytest.mark.parametrize(
    ("version", "latest", "immutable", "moving"),
    [
        ("v1.22.1", False, ("v1.22.1",), ("v1.22", "v1")),
        ("v1.22.1", True, ("v1.22.1",), ("v1.22", "v1", "latest")),
        ("v0.3.10", False, ("v0.3.10",), ("v0.3", "v0")),
        ("v1.23.0-rc.1", False, ("v1.23.0-rc.1",), ()),
    ],
)
def test_tags(version: str, latest: bool, immutable: tuple, moving: tuple) -> None:
    assert pub.tags_for(version, latest) == pub.Tags(immutable, moving)


def test_prerelease_is_never_latest_and_bad_versions_refused() -> None:
    with pytest.raises(InputError, match="prerelease"):
        pub.tags_for("v1.23.0-rc.1", latest=True)
    with pytest.raises(InputError, match=r"vMAJOR\.MINOR\.PATCH"):
        pub.tags_for("1.22.1")


@pytest.mark.parametrize(
    "address", ["ghcr.io", "registry.example.com:5000", "127.0.0.1:5000", "localhost:5000"]
)
def test_good_addresses(address: str) -> None:
    assert pub.check_address(address) == address


@pytest.mark.parametrize(
    ("address", "fix"),
    [
        ("https://ghcr.io", "'ghcr.io'"),
        ("ghcr.io/myorg", "namespace"),
        ("ghcr.io:99999", "out of range"),
        ("bad host", "host"),
        ("", "host"),
    ],
)
def test_bad_addresses_name_the_fix(address: str, fix: str) -> None:
    with pytest.raises(pub.PublishInputError, match=fix):
        pub.check_address(address)


def test_credentials_in_the_address_are_refused_without_echoing_them() -> None:
    with pytest.raises(pub.PublishInputError) as caught:
        pub.check_address("ci:hunter2-secret@ghcr.io")
    assert "hunter2" not in str(caught.value)


@pytest.mark.parametrize("namespace", ["MyOrg", "org//team", "-org", "org/"])
def test_bad_namespaces(namespace: str) -> None:
    with pytest.raises(pub.PublishInputError):
        pub.check_namespace(namespace)


def test_repository() -> None:
    row = pub.target("postgres")
    assert pub.repository("ghcr.io", "my-org/team", row) == "ghcr.io/my-org/team/openfga-postgres"
    assert pub.repository("127.0.0.1:5000", "", pub.target("openfga")) == "127.0.0.1:5000/openfga"
    with pytest.raises(pub.PublishInputError, match="known: openfga, postgres"):
        pub.target("redis")


def test_guard() -> None:
    ref = "r/openfga:v1.0.0"
    assert pub.guard(ref, None, DIGEST_A, force=False) is True  # new tag
    assert pub.guard(ref, DIGEST_A, DIGEST_A, force=False) is False  # re-run: nothing to move
    assert pub.guard(ref, DIGEST_B, DIGEST_A, force=True) is True  # named --force
    with pytest.raises(pub.ImmutableTagError, match="--force") as caught:
        pub.guard(ref, DIGEST_B, DIGEST_A, force=False)
    assert DIGEST_B in str(caught.value) and DIGEST_A in str(caught.value)


def test_read_digest() -> None:
    assert pub.read_digest(0, DIGEST_A + "\n", "", "r:t") == DIGEST_A
    missing = "GET http://x/v2/o/manifests/t: MANIFEST_UNKNOWN: manifest unknown"
    assert pub.read_digest(1, "", missing, "r:t") is None
    assert pub.read_digest(1, "", "NAME_UNKNOWN: repository name not known", "r:t") is None
    with pytest.raises(StepError, match="authentication"):
        pub.read_digest(1, "", "UNAUTHORIZED: authentication required", "r:t")
    with pytest.raises(StepError, match="reachable"):
        pub.read_digest(1, "", "dial tcp: connection refused", "r:t")
    with pytest.raises(StepError, match="not a sha256"):
        pub.read_digest(0, "garbage", "", "r:t")


def test_layout_root_nested_index_and_flat(tmp_path: Path) -> None:
    digest = write_layout(tmp_path / "l", {"linux/amd64": {"a": b"1"}, "linux/arm64": {"a": b"2"}})
    root = pub.layout_root((tmp_path / "l" / "index.json").read_bytes())
    assert (root.digest, root.use_index_flag) == (digest, False)
    info = rel.layout_index(tmp_path / "l")
    assert sorted(info["platforms"]) == ["linux/amd64", "linux/arm64"]
    # A layout whose index.json lists the images directly needs crane push --index.
    nested = json.loads((tmp_path / "l" / "blobs" / "sha256" / digest[7:]).read_bytes())
    flat = json.dumps(nested).encode()
    root = pub.layout_root(flat)
    assert root.use_index_flag and root.digest == "sha256:" + hashlib.sha256(flat).hexdigest()
    assert pub.push_argv("crane", "/l", "r:t", root) == ["crane", "push", "--index", "/l", "r:t"]
    with pytest.raises(pub.PublishInputError):
        pub.layout_root(b'{"manifests": []}')
    with pytest.raises(pub.PublishInputError):
        pub.layout_root(b"not json")


def test_missing_platform_is_refused() -> None:
    with pytest.raises(StepError, match="linux/arm64"):
        pub.check_platforms({"linux/amd64": DIGEST_A}, pub.PLATFORMS)
    pub.check_platforms({"linux/amd64": DIGEST_A, "linux/arm64/v8": DIGEST_B}, pub.PLATFORMS)


def test_login_password_only_on_stdin() -> None:
    seen: list[tuple[list[str], str | None]] = []

    def run(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
        seen.append((argv, stdin))
        return 0, "", ""

    pub.login(run, "crane", "ghcr.io", "ci", "p@ss")
    assert seen == [(["crane", "auth", "login", "ghcr.io", "-u", "ci", "--password-stdin"], "p@ss")]


def test_guard_refuses_before_any_push(tmp_path: Path) -> None:
    """With one image's release tag on other content, nothing at all is pushed."""
    digest = write_layout(tmp_path / "l", {"linux/amd64": {"a": b"1"}, "linux/arm64": {"a": b"2"}})
    index_json = (tmp_path / "l" / "index.json").read_bytes()
    plans = [
        pub.plan_image("r:5000", "o", n, str(tmp_path / "l"), index_json, "v1.0.0")
        for n in ("openfga", "postgres")
    ]
    calls: list[list[str]] = []

    def run(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
        calls.append(argv)
        if argv[1] == "digest":
            return (
                (0, DIGEST_B, "") if "openfga-postgres" in argv[2] else (1, "", "MANIFEST_UNKNOWN")
            )
        raise AssertionError(f"no push may run: {argv}")

    with pytest.raises(pub.ImmutableTagError, match=r"openfga-postgres:v1\.0\.0"):
        pub.publish(run, pub.PublishPlan("r:5000", plans))
    assert {c[1] for c in calls} == {"digest"}
    assert digest not in " ".join(" ".join(c) for c in calls)


def test_checksums_goreleaser_format() -> None:
    text = rel.checksums_txt({"b_file": "2" * 64, "a_file": "1" * 64})
    assert text == f"{'1' * 64}  a_file\n{'2' * 64}  b_file\n"
    with pytest.raises(InputError):
        rel.checksums_txt({"dir/x": "1" * 64})


def test_names() -> None:
    assert rel.binary_name("v1.22.1", "linux/arm64") == "openfga_1.22.1_linux_arm64"
    assert rel.binary_sbom_name("v1.22.1", "linux/amd64") == "openfga_1.22.1_linux_amd64.cdx.json"
    assert (
        rel.image_sbom_name("postgres", "v1.22.1", "linux/amd64")
        == "postgres-image_1.22.1_linux_amd64.cdx.json"
    )


def test_manifest_is_deterministic_and_complete() -> None:
    images = {"openfga": {"digest": DIGEST_A, "platforms": {"linux/amd64": DIGEST_B}}}
    one = rel.manifest_bytes(
        "v1.0.0", "2026-01-01T00:00:00Z", {"f": "1" * 64}, images, "2" * 64, False
    )
    two = rel.manifest_bytes(
        "v1.0.0", "2026-01-01T00:00:00Z", {"f": "1" * 64}, images, "2" * 64, False
    )
    assert one == two and one.endswith(b"\n")
    doc = json.loads(one)
    assert doc["artifacts"] == {"f": {"sha256": "1" * 64}}
    assert doc["images"]["openfga"]["digest"] == DIGEST_A
    assert list(doc) == sorted(doc)


def test_finalize_writes_sorted_sums(tmp_path: Path) -> None:
    (tmp_path / "openfga_1.0.0_linux_arm64").write_bytes(b"arm")
    (tmp_path / "openfga_1.0.0_linux_amd64").write_bytes(b"amd")
    rel.finalize(tmp_path, "v1.0.0", "2026-01-01T00:00:00Z", {}, published=False)
    lines = (tmp_path / "checksums.txt").read_text().splitlines()
    assert lines == [
        f"{hashlib.sha256(b'amd').hexdigest()}  openfga_1.0.0_linux_amd64",
        f"{hashlib.sha256(b'arm').hexdigest()}  openfga_1.0.0_linux_arm64",
    ]
    first = (tmp_path / "release.json").read_bytes()
    rel.finalize(tmp_path, "v1.0.0", "2026-01-01T00:00:00Z", {}, published=False)
    assert (tmp_path / "release.json").read_bytes() == first  # its own outputs are not inputs


def test_sign_argv_key_mode_takes_the_key_from_env_and_a_digest_only() -> None:
    ref = "r/openfga@" + DIGEST_A
    argv = sign.sign_argv("cosign", ref, sign.Signing())
    assert argv == [
        "cosign", "sign", "--yes", "--key", "env://COSIGN_PRIVATE_KEY",
        "--tlog-upload=false", "--recursive", ref,
    ]  # fmt: skip
    with pytest.raises(sign.SignInputError, match="digest"):
        sign.sign_argv("cosign", "r/openfga:v1.0.0", sign.Signing())
    verify = sign.verify_attestation_argv("cosign", ref, sign.Signing(), "/k/cosign.pub")
    assert "--insecure-ignore-tlog=true" in verify and "cyclonedx" in verify


def test_keyless_needs_the_log_and_an_identity() -> None:
    with pytest.raises(sign.SignInputError, match="transparency log"):
        sign.Signing(keyless=True)
    keyless = sign.Signing(keyless=True, tlog=True)
    ref = "r/openfga@" + DIGEST_A
    assert "--key" not in sign.sign_argv("cosign", ref, keyless)
    with pytest.raises(sign.SignInputError, match="identity"):
        sign.verify_argv("cosign", ref, keyless, "")
    assert sign.secret_env_names(keyless) == ("SIGSTORE_ID_TOKEN",)


def test_every_error_is_a_release_error() -> None:
    for cls in (pub.PublishInputError, pub.ImmutableTagError, sign.SignInputError):
        assert issubclass(cls, ReleaseError)
