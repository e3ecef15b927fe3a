"""Packaging the two unikernel images with the official CLI, as argv and data.

Plain module. The pipeline's container (the pinned Python image) installs the
official ``kraft`` CLI (kraftkit) at :data:`KRAFT_VERSION` from its release
archive and refuses it unless its SHA-256 matches the pin; then, per image:

1. ``kraft pkg`` packs the rootfs DIRECTORY beside the Kraftfile (pure Go, no
   BuildKit: only a Dockerfile rootfs needs it) into kraftkit's local OCI
   store, without pushing;
2. ``kraft pkg push`` copies it to ``index.unikraft.io/<user>/<name>:<tag>``
   (building and pushing in one step failed 6/6 in the field; the copy is a
   separate step the pipeline retries);
3. the registry's manifest digest is read back (:func:`digest`, registry API v2)
   and ``<ref>@sha256:...`` returned: the deploy takes digests only.

Rootfs format: **cpio** (an initrd). OpenFGA needs a writable ``/tmp`` and
PostgreSQL writes its run directory outside the volume; an initrd is writable
in the instance's RAM with nothing else to mount, whereas EROFS is read-only
and would need a volume or tmpfs for them. The price is RAM: the rootfs sits
in the instance's memory (OpenFGA's is one 63 MiB binary plus the CA bundle; the
PostgreSQL Kraftfile sizes its config for what is left).

The token is base64 of ``user:secret``; it reaches the CLI only as the env
variables :data:`TOKEN_ENVS`, set from a Dagger secret.
"""

from __future__ import annotations

import base64
import json
import re
import urllib.error
import urllib.request
from dataclasses import dataclass

from ..errors import InputError

KRAFT_VERSION = "0.12.15"
KRAFT_URL = ("https://github.com/unikraft/kraftkit/releases/download/v{v}/"
             "kraft_{v}_linux_amd64.tar.gz")
# SHA-256 of kraft_<KRAFT_VERSION>_linux_amd64.tar.gz, from the release's
# kraftkit_<version>_checksums.txt. It could not be read from this workplace
# (no access to the release assets), so it is empty: packaging refuses to run
# until it is filled here or passed as --kraft-sha256.
KRAFT_SHA256 = ""
KRAFT_BIN = "/usr/local/bin/kraft"
REGISTRY = "index.unikraft.io"
TOKEN_ENVS = ("KRAFTCLOUD_TOKEN", "UKC_TOKEN")
ROOTFS_TYPE = "cpio"
_SHA256 = re.compile(r"^[0-9a-f]{64}$")
_PART = re.compile(r"^[a-z0-9]([a-z0-9._-]{0,62}[a-z0-9])?$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")


class PackageInputError(InputError):
    """A packaging argument that cannot be right."""


def check_sha256(value: str) -> str:
    if not _SHA256.match(value or ""):
        raise PackageInputError(
            f"the kraft CLI v{KRAFT_VERSION} has no pinned checksum: pass --kraft-sha256 with "
            f"the SHA-256 of kraft_{KRAFT_VERSION}_linux_amd64.tar.gz from the release's "
            f"kraftkit_{KRAFT_VERSION}_checksums.txt (64 lowercase hex characters)")
    return value


@dataclass(frozen=True)
class Target:
    user: str
    name: str
    tag: str

    def __post_init__(self) -> None:
        for what, value, rule in (("user", self.user, _PART), ("name", self.name, _PART),
                                  ("tag", self.tag, _TAG)):
            if not rule.match(value):
                raise PackageInputError(
                    f"image {what} {value!r} is not valid in {REGISTRY}/<user>/<name>:<tag> "
                    "(lowercase letters, digits, '.', '_', '-')")

    @property
    def ref(self) -> str:
        return f"{REGISTRY}/{self.user}/{self.name}:{self.tag}"


INSTALL_PY = """
import hashlib, io, sys, tarfile, urllib.request
url, want, dest = sys.argv[1:4]
data = urllib.request.urlopen(url, timeout=120).read()
got = hashlib.sha256(data).hexdigest()
if got != want:
    sys.exit(f"kraft archive checksum mismatch: got {got}, pinned {want}; refusing it")
with tarfile.open(fileobj=io.BytesIO(data)) as tar:
    member = next(m for m in tar.getmembers() if m.name.split('/')[-1] == 'kraft')
    with open(dest, 'wb') as out:
        out.write(tar.extractfile(member).read())
print(f"kraft installed, sha256 {got}")
"""


def install_argv(sha256: str, version: str = KRAFT_VERSION, dest: str = KRAFT_BIN) -> list[str]:
    """Download the pinned archive and install ``kraft`` only if its SHA-256 matches."""
    return ["python3", "-c", INSTALL_PY, KRAFT_URL.format(v=version), check_sha256(sha256), dest]


def pkg_argv(target: Target, rootfs_type: str = ROOTFS_TYPE) -> list[str]:
    """``kraft pkg`` in the Kraftfile's directory: local OCI image from ``./rootfs``."""
    if rootfs_type not in ("cpio", "erofs"):
        raise PackageInputError("rootfs type must be cpio or erofs")
    return [KRAFT_BIN, "pkg", "--plat", "kraftcloud", "--arch", "x86_64", "--as", "oci",
            "--rootfs-type", rootfs_type, "--name", target.ref, "--log-type", "basic",
            "--no-prompt", "."]


def push_argv(target: Target) -> list[str]:
    """Copy the local package to the registry (a separate, retried step)."""
    return [KRAFT_BIN, "pkg", "push", "--log-type", "basic", "--no-prompt", target.ref]


def registry_auth(token: str) -> tuple[str, str]:
    """(user, secret) from the token (base64 of ``user:secret``)."""
    try:
        user, _, secret = base64.b64decode(token, validate=True).decode().partition(":")
    except ValueError:
        user, secret = "", ""
    if not user or not secret:
        raise PackageInputError("the KraftCloud token does not decode to user:secret (base64): "
                                "pass the token `kraft login` prints, as a secret")
    return user, secret


_ACCEPT = ", ".join((
    "application/vnd.oci.image.index.v1+json", "application/vnd.oci.image.manifest.v1+json",
    "application/vnd.docker.distribution.manifest.list.v2+json",
    "application/vnd.docker.distribution.manifest.v2+json"))


def digest(target: Target, token: str, timeout: float = 30.0) -> str:
    """``<ref>@sha256:...`` read back from the registry (HEAD on the manifest, answering
    a Bearer challenge with the token's basic credentials)."""
    user, secret = registry_auth(token)
    url = f"https://{REGISTRY}/v2/{target.user}/{target.name}/manifests/{target.tag}"
    basic = "Basic " + base64.b64encode(f"{user}:{secret}".encode()).decode()
    headers = {"Accept": _ACCEPT, "Authorization": basic}
    for _ in range(2):
        req = urllib.request.Request(url, method="HEAD", headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=timeout) as resp:  # noqa: S310 (https)
                found = resp.headers.get("Docker-Content-Digest", "")
                if not found.startswith("sha256:"):
                    break
                return f"{REGISTRY}/{target.user}/{target.name}@{found}"
        except urllib.error.HTTPError as exc:
            challenge = exc.headers.get("WWW-Authenticate", "")
            if exc.code != 401 or not challenge.lower().startswith("bearer "):
                raise PackageInputError(f"the registry refused {target.ref} (HTTP {exc.code}): "
                                        "check the user and the token") from None
            params = dict(re.findall(r'(\w+)="([^"]*)"', challenge))
            query = "&".join(f"{k}={params[k]}" for k in ("service", "scope") if k in params)
            realm = params.get("realm", "")
            if not realm.startswith("https://"):
                raise PackageInputError(f"the registry's token realm {realm!r} is not https"
                                        ) from None
            treq = urllib.request.Request(f"{realm}?{query}",  # noqa: S310 (https only)
                                          headers={"Authorization": basic})
            with urllib.request.urlopen(treq, timeout=timeout) as tresp:  # noqa: S310
                tok = json.load(tresp)
            headers["Authorization"] = f"Bearer {tok.get('token') or tok.get('access_token')}"
    raise PackageInputError(f"the registry did not give a digest for {target.ref}")


def main(argv: list[str] | None = None) -> int:
    """``python -m openfga_release.recipes.kraftcloud.package digest USER NAME TAG``
    (token from ``UKC_TOKEN``): prints the digest reference."""
    import os
    import sys

    args = sys.argv[1:] if argv is None else argv
    if len(args) != 4 or args[0] != "digest":
        print("usage: ... package digest USER NAME TAG", file=sys.stderr)
        return 2
    try:
        print(digest(Target(*args[1:]), os.environ.get("UKC_TOKEN", "")))
    except InputError as exc:
        print(f"FAILED: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
