"""The release directory and the publish run: names, checksums.txt, the manifest, the CLI.

Plain module (no dagger import). The pipeline copies this package into a Python
container holding pinned ``crane`` and ``cosign`` and runs::

    python -m openfga_release.recipes.release finalize /dist --version v1.22.1 ...
    python -m openfga_release.recipes.release publish --request /in/request.json

The tests run the very same commands against a real registry on loopback.

``dist/`` (goreleaser's conventions, reproducible bytes):

- ``openfga_<X.Y.Z>_linux_<arch>``: the binary for each architecture;
- ``openfga_<X.Y.Z>_linux_<arch>.cdx.json``: its SBOM (CycloneDX 1.6, from Go build info);
- ``<image>-image_<X.Y.Z>_linux_<arch>.cdx.json``: each image's SBOM per platform;
- ``checksums.txt``: ``<sha256>  <name>`` for every file above, sorted by name;
- ``release.json``: every artifact's checksum and every image's digests, sorted keys,
  no timestamps other than the release's own commit date.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from . import publish as pub
from . import refs, sign
from .errors import InputError, ReleaseError, StepError
from .releases import check_version_format

CHECKSUMS = "checksums.txt"
MANIFEST = "release.json"
MANIFEST_SCHEMA = "openfga-release/manifest/v1"
PROJECT = "openfga"
USERNAME_ENV = "REGISTRY_USERNAME"
# The Python image the release steps run in (the pin recipes/refs.py owns for the
# standalone scripts; one value), and the pinned CycloneDX library for the SBOMs.
PYTHON_IMAGE = refs.PYTHON_IMAGE
SBOM_REQUIREMENTS = ("cyclonedx-python-lib[json-validation]==11.12.0",)
# Unpacks Dagger's OCI tarball into a layout directory (no absolute paths, no links out).
UNTAR_SCRIPT = (
    "import sys, tarfile; tarfile.open(sys.argv[1]).extractall(sys.argv[2], filter='data')"
)
PASSWORD_ENV = "REGISTRY_PASSWORD"  # noqa: S105 (a name) a secret: read from the environment, passed on stdin


def _plain(version: str) -> str:
    return check_version_format(version)[1:]


def _arch(platform: str) -> str:
    os_, _, arch = platform.partition("/")
    if os_ != "linux" or not arch:
        raise InputError(f"platform {platform!r}: this release builds linux/<arch> only")
    return arch.replace("/", "")


def binary_name(version: str, platform: str) -> str:
    """``openfga_1.22.1_linux_amd64`` (goreleaser's name template, without an archive)."""
    return f"{PROJECT}_{_plain(version)}_linux_{_arch(platform)}"


def binary_sbom_name(version: str, platform: str) -> str:
    return binary_name(version, platform) + ".cdx.json"


def image_sbom_name(image: str, version: str, platform: str) -> str:
    return f"{image}-image_{_plain(version)}_linux_{_arch(platform)}.cdx.json"


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def checksums_txt(sums: Mapping[str, str]) -> str:
    """goreleaser's format: ``<sha256>  <name>`` per line, sorted by name (``sha256sum -c``)."""
    for name in sums:
        if "/" in name or "\n" in name or not name:
            raise InputError(f"artifact name {name!r} must be a plain file name")
    return "".join(f"{sums[name]}  {name}\n" for name in sorted(sums))


def manifest_bytes(
    version: str,
    date: str,
    artifacts: Mapping[str, str],
    images: Mapping[str, Mapping[str, Any]],
    checksums_sha256: str,
    published: bool,
) -> bytes:
    """The release manifest: deterministic (sorted keys, no clock), one trailing newline."""
    doc = {
        "schema": MANIFEST_SCHEMA,
        "version": check_version_format(version),
        "date": date,
        "published": published,
        "artifacts": {name: {"sha256": sha} for name, sha in artifacts.items()},
        "checksums": {"name": CHECKSUMS, "sha256": checksums_sha256},
        "images": images,
    }
    return (json.dumps(doc, indent=2, sort_keys=True) + "\n").encode()


# -- OCI layouts on disk ------------------------------------------------------------------


def layout_index(layout: Path) -> dict[str, Any]:
    """The root, its digest and per-platform manifest digests of an OCI layout directory."""
    index_json = (layout / "index.json").read_bytes()
    root = pub.layout_root(index_json)
    if root.use_index_flag:
        manifest = index_json
    else:
        algo, _, hexd = root.digest.partition(":")
        manifest = (layout / "blobs" / algo / hexd).read_bytes()
    return {
        "digest": root.digest,
        "media_type": root.media_type,
        "platforms": pub.index_platforms(manifest),
    }


def images_entry(
    address: str,
    namespace: str,
    version: str,
    latest: bool,
    layouts: Mapping[str, Path],
) -> dict[str, dict[str, Any]]:
    """What each image of the matrix will be (or was) published as; known before any push."""
    out: dict[str, dict[str, Any]] = {}
    for name, layout in sorted(layouts.items()):
        row = pub.target(name)
        info = layout_index(layout)
        pub.check_platforms(info["platforms"], row.platforms)
        repo = pub.repository(address, namespace, row)
        tags = pub.tags_for(version, latest)
        out[name] = {
            "repository": repo,
            "digest": info["digest"],
            "digest_ref": f"{repo}@{info['digest']}",
            "media_type": info["media_type"],
            "platforms": info["platforms"],
            "tags": [*tags.immutable, *tags.moving],
        }
    return out


def finalize(
    dist: Path, version: str, date: str, images: Mapping[str, Any], published: bool
) -> dict[str, str]:
    """Write checksums.txt and release.json into ``dist``; return the artifact sums."""
    sums = {
        p.name: sha256_file(p)
        for p in sorted(dist.iterdir())
        if p.is_file() and p.name not in (CHECKSUMS, MANIFEST)
    }
    if not sums:
        raise StepError(f"{dist} holds no artifacts: build the binaries and SBOMs first")
    text = checksums_txt(sums).encode()
    (dist / CHECKSUMS).write_bytes(text)
    (dist / MANIFEST).write_bytes(
        manifest_bytes(version, date, sums, images, hashlib.sha256(text).hexdigest(), published)
    )
    return sums


# -- the publish run (crane + cosign) ------------------------------------------------------


def subprocess_runner(env: Mapping[str, str] | None = None) -> pub.Runner:
    def run(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
        proc = subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env)
        return proc.returncode, proc.stdout, proc.stderr

    return run


def run_publish(request: Mapping[str, Any], runner: pub.Runner, env: Mapping[str, str]) -> dict:
    """Guard, push, tag, read back; then sign each digest and attest its platforms' SBOMs.

    ``request``: address, namespace, version, latest, force, crane, cosign, images
    ({name: layout dir}), sboms ({name: {platform: path}}), sign (bool), keyless
    (bool), public_key (path, for the verify step). Credentials come from ``env``.
    """
    crane, cosign = request.get("crane", "crane"), request.get("cosign", "cosign")
    counts = {"crane": 0, "cosign": 0}

    def run(argv: list[str], stdin: str | None) -> tuple[int, str, str]:
        counts["crane" if argv[0] == crane else "cosign"] += 1
        return runner(argv, stdin)

    address, namespace = request["address"], request.get("namespace", "")
    version, latest = request["version"], bool(request.get("latest", False))
    plans = []
    for name, layout in sorted(request["images"].items()):
        index_json = (Path(layout) / "index.json").read_bytes()
        plans.append(pub.plan_image(address, namespace, name, layout, index_json, version, latest))
    username = env.get(USERNAME_ENV, "")
    if username and not env.get(PASSWORD_ENV):
        raise InputError(f"{USERNAME_ENV} is set but {PASSWORD_ENV} is empty: give the password")
    pub.login(run, crane, address, username, env.get(PASSWORD_ENV, ""))
    plan = pub.PublishPlan(address, plans, bool(request.get("force", False)), crane)
    published = pub.publish(run, plan)
    result: dict[str, Any] = {"images": {}}
    signing = sign.Signing(keyless=bool(request.get("keyless", False)),
                           tlog=bool(request.get("keyless", False)))  # fmt: skip
    for image in published:
        entry = image.to_json()
        if request.get("sign"):
            pub._ok(run, sign.sign_argv(cosign, image.digest_ref, signing), "cosign sign")
            repo = image.digest_ref.split("@")[0]
            sboms = request.get("sboms", {}).get(image.name, {})
            attested = {}
            for platform, digest in image.platforms.items():
                base = "/".join(platform.split("/")[:2])
                if base in sboms:
                    ref = f"{repo}@{digest}"
                    pub._ok(
                        run, sign.attest_argv(cosign, ref, sboms[base], signing), "cosign attest"
                    )
                    attested[platform] = ref
            entry["attested"] = attested
            if request.get("public_key") and not signing.keyless:
                verify(run, cosign, image.digest_ref, attested.values(), signing,
                       request["public_key"])  # fmt: skip
            entry["signed"] = True
        result["images"][image.name] = entry
    result["commands"] = dict(counts)  # each crane/cosign run: one or more registry round trips
    return result


def verify(
    run: pub.Runner, cosign: str, ref: str, attested: Any, signing: sign.Signing, key: str
) -> None:
    code, _, err = run(sign.verify_argv(cosign, ref, signing, key), None)
    if code != 0:
        raise StepError(f"the signature on {ref} does not verify with the given key", err[-2000:])
    for att in attested:
        code, _, err = run(sign.verify_attestation_argv(cosign, att, signing, key), None)
        if code != 0:
            raise StepError(f"the SBOM attestation on {att} does not verify", err[-2000:])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m openfga_release.recipes.release")
    sub = parser.add_subparsers(dest="cmd", required=True)
    fin = sub.add_parser("finalize", help="write checksums.txt and release.json into DIST")
    fin.add_argument("dist")
    fin.add_argument("--version", required=True)
    fin.add_argument("--date", required=True)
    fin.add_argument("--images", required=True, help="JSON: images as images_entry gives them")
    fin.add_argument("--published", action="store_true")
    lay = sub.add_parser("images", help="print the images entry for NAME=LAYOUT pairs")
    lay.add_argument("--address", required=True)
    lay.add_argument("--namespace", default="")
    lay.add_argument("--version", required=True)
    lay.add_argument("--latest", action="store_true")
    lay.add_argument("layouts", nargs="+", help="NAME=LAYOUT_DIR")
    pubp = sub.add_parser("publish", help="push, tag, sign, verify (request JSON)")
    pubp.add_argument("--request", required=True)
    args = parser.parse_args(argv)
    try:
        if args.cmd == "finalize":
            images = json.loads(Path(args.images).read_text())
            finalize(Path(args.dist), args.version, args.date, images, args.published)
        elif args.cmd == "images":
            pairs = dict(p.split("=", 1) for p in args.layouts)
            layouts = {k: Path(v) for k, v in pairs.items()}
            out = images_entry(args.address, args.namespace, args.version, args.latest, layouts)
            sys.stdout.write(json.dumps(out, indent=2, sort_keys=True) + "\n")
        else:
            request = json.loads(Path(args.request).read_text())
            result = run_publish(request, subprocess_runner(), os.environ)
            sys.stdout.write(json.dumps(result, indent=2, sort_keys=True) + "\n")
    except ReleaseError as error:
        detail = getattr(error, "detail", "")
        print(f"{error}\n{detail}".rstrip(), file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
