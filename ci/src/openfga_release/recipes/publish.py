"""Publishing to any OCI registry: the release matrix as data, tags, the guard, crane's argv.

Plain module (no dagger import). The release matrix (:data:`MATRIX`) says which
images the release pushes, for which platforms and under which tags; the rest
turns one release into exact ``crane`` commands and reads their answers.

The pipeline and the tests run the same code: :func:`publish` takes a ``run``
callable (argv, stdin) -> (exit code, stdout, stderr). In the pipeline it runs in
a container holding this package and a pinned ``crane`` (built from the Go
module proxy, the same version the tests build); the tests run it against a
real ``registry`` on loopback.

Why crane and not Dagger's ``Container.publish(platform_variants=...)``: Dagger
can push a multi-platform image, but it cannot ask the registry what a tag
points at *before* pushing (the immutable-tag guard), it returns only the
digest of the one tag it pushed, and nothing of it can run without an engine.
Here Dagger exports the multi-platform OCI layout (``as_tarball`` with
``platform_variants``) and crane pushes that layout: the digest is known from
the layout before the push, and the tests prove the whole sequence for real.

Order of one image's publish (each step a registry round trip or two):
1. ``crane digest REPO:vX.Y.Z`` for each immutable tag: absent -> push; same
   digest -> nothing to move; another digest -> refuse unless ``force``.
2. ``crane push [--index] LAYOUT REPO:vX.Y.Z``: prints ``REPO@sha256:...``,
   which must be the digest computed from the layout (else the registry
   rewrote what was built).
3. ``crane tag REPO@DIGEST TAG`` for each moving tag (vX.Y, vX, latest).
4. ``crane manifest REPO@DIGEST``: the index read back lists every platform.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from .errors import InputError, StepError
from .releases import check_version_format

# crane, pinned: the pipeline builds it with the pinned Go image, the tests with
# the machine's pinned Go (tests/support/tools.py reads this version).
CRANE_MODULE = "github.com/google/go-containerregistry"
CRANE_PACKAGE = "github.com/google/go-containerregistry/cmd/crane"
CRANE_VERSION = "v0.22.1"

PLATFORMS: tuple[str, ...] = ("linux/amd64", "linux/arm64")
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")


class PublishInputError(InputError):
    """A registry address, repository, tag or layout that cannot be published."""


class ImmutableTagError(StepError):
    """A release tag already in the registry points at other content."""


@dataclass(frozen=True)
class ImageTarget:
    """One row of the release matrix: an image, its platforms, its repository name."""

    name: str  # key used by the pipeline ("openfga", "postgres")
    repository: str  # last path element(s) under the registry namespace
    platforms: tuple[str, ...]
    description: str


# The release matrix: images x platforms. Tags come from :func:`tags_for`.
MATRIX: tuple[ImageTarget, ...] = (
    ImageTarget("openfga", "openfga", PLATFORMS, "the OpenFGA server (scratch image)"),
    ImageTarget("postgres", "openfga-postgres", PLATFORMS, "PostgreSQL configured for OpenFGA"),
)
# Tag templates: the first is immutable (never moved without --force).
TAG_TEMPLATES: tuple[str, ...] = ("v{major}.{minor}.{patch}", "v{major}.{minor}", "v{major}")


def target(name: str) -> ImageTarget:
    for row in MATRIX:
        if row.name == name:
            return row
    known = ", ".join(r.name for r in MATRIX)
    raise PublishInputError(f"no image {name!r} in the release matrix (known: {known})")


@dataclass(frozen=True)
class Tags:
    immutable: tuple[str, ...]  # checked against the registry before pushing
    moving: tuple[str, ...]  # re-pointed on every release


def tags_for(version: str, latest: bool = False) -> Tags:
    """``vX.Y.Z`` (immutable), ``vX.Y``, ``vX`` (and ``latest`` when asked).

    A prerelease (``v1.2.3-rc.1``) gets only its own tag: it must never move the
    ``v1.2``/``v1``/``latest`` that users of the stable line pull.
    """
    check_version_format(version)
    core, _, pre = version[1:].partition("-")
    major, minor, patch = core.split(".")
    if pre:
        if latest:
            raise PublishInputError(
                f"{version} is a prerelease: it cannot be tagged latest (drop --latest)"
            )
        return Tags((version,), ())
    names = [t.format(major=major, minor=minor, patch=patch) for t in TAG_TEMPLATES]
    moving = names[1:] + (["latest"] if latest else [])
    return Tags((names[0],), tuple(moving))


# -- registry address and repository ------------------------------------------------------

# host[:port]: a DNS name or IPv4 (IPv6 needs brackets), as the distribution reference grammar.
_HOST = re.compile(
    r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*"
    r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$"
)
# One path component of a repository, per the OCI distribution spec.
_COMPONENT = re.compile(r"^[a-z0-9]+(?:(?:\.|_|__|-+)[a-z0-9]+)*$")


def check_address(address: str) -> str:
    """``ghcr.io``, ``registry.example.com:5000``, ``127.0.0.1:5000``: a host, nothing else."""
    if "@" in address:
        # Never echo it: whatever is before the @ may be a password.
        raise PublishInputError(
            "the registry address holds credentials (something@host): give only the host, "
            "and the user and password as --username and --password env://VAR"
        )
    if "://" in address:
        raise PublishInputError(
            f"registry address {address!r} has a scheme: give the host alone, e.g. "
            f"{address.split('://', 1)[1].split('/')[0]!r}"
        )
    if "/" in address:
        host, _, rest = address.partition("/")
        raise PublishInputError(
            f"registry address {address!r} has a path: give the host as the address "
            f"({host!r}) and {rest!r} as the repository namespace"
        )
    if not _HOST.match(address):
        raise PublishInputError(
            f"registry address {address!r} is not a host[:port] such as ghcr.io or "
            "registry.example.com:5000"
        )
    port = address.rpartition(":")[2] if address.count(":") == 1 else ""
    if port and not 0 < int(port) < 65536:
        raise PublishInputError(f"registry address {address!r}: port {port} is out of range")
    return address


def check_namespace(namespace: str) -> str:
    """The repository prefix (``myorg``, ``myorg/team``); lower case, per the OCI spec."""
    if namespace == "":
        return namespace
    bad = [c for c in namespace.split("/") if not _COMPONENT.match(c)]
    if bad:
        raise PublishInputError(
            f"repository namespace {namespace!r}: {bad[0]!r} is not a valid path component "
            "(lower-case letters and digits, separated by '.', '_', '__' or '-')"
        )
    return namespace


def repository(address: str, namespace: str, image: ImageTarget) -> str:
    """``ADDRESS/NAMESPACE/REPO``: validated, so no registry call sees a bad name."""
    check_address(address)
    check_namespace(namespace)
    path = f"{namespace}/{image.repository}" if namespace else image.repository
    ref = f"{address}/{path}"
    if len(path) > 255:
        raise PublishInputError(f"repository {ref!r} is longer than 255 characters")
    return ref


# -- OCI layouts: the digest of what will be pushed, before it is pushed --------------------


@dataclass(frozen=True)
class LayoutRoot:
    """What ``crane push`` will push from an OCI layout, and its digest."""

    digest: str  # of the pushed manifest or index
    media_type: str
    use_index_flag: bool  # crane push --index (index.json lists images directly)


def layout_root(index_json: bytes) -> LayoutRoot:
    """Read an OCI layout's ``index.json`` as crane push reads it.

    One entry that is an index (BuildKit/Dagger's multi-platform export): crane
    pushes that index, whose digest is in the descriptor. Several image entries:
    crane needs ``--index`` and pushes index.json's own bytes.
    """
    try:
        doc = json.loads(index_json)
        manifests = doc["manifests"]
    except (ValueError, KeyError, TypeError):
        raise PublishInputError(
            "the OCI layout's index.json is not an image index: export the image with "
            "Container.as_tarball (or `crane pull --format oci`) and pass that layout"
        ) from None
    if len(manifests) == 1 and manifests[0].get("mediaType") in INDEX_TYPES:
        return LayoutRoot(manifests[0]["digest"], manifests[0]["mediaType"], False)
    if manifests and all(m.get("platform") for m in manifests):
        return LayoutRoot(sha256_digest(index_json), OCI_INDEX, True)
    raise PublishInputError(
        "the OCI layout holds neither one multi-platform index nor images with platforms: "
        "export it with platform variants (one container per platform of the matrix)"
    )


def sha256_digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def index_platforms(manifest: bytes) -> dict[str, str]:
    """``{"linux/amd64": "sha256:...", ...}`` from an image index's bytes.

    Attestation manifests (BuildKit's ``unknown/unknown``) are not platforms.
    """
    doc = json.loads(manifest)
    if doc.get("mediaType") not in INDEX_TYPES and "manifests" not in doc:
        raise StepError("the pushed manifest is a single image, not a multi-platform index")
    out: dict[str, str] = {}
    for entry in doc.get("manifests", []):
        p = entry.get("platform") or {}
        if not p or p.get("os") == "unknown":
            continue
        name = f"{p['os']}/{p['architecture']}" + (f"/{p['variant']}" if p.get("variant") else "")
        out[name] = entry["digest"]
    return dict(sorted(out.items()))


def check_platforms(found: dict[str, str], wanted: Sequence[str]) -> None:
    def base(p: str) -> str:
        return "/".join(p.split("/")[:2])  # linux/arm64/v8 counts as linux/arm64

    missing = sorted(set(wanted) - {base(p) for p in found})
    if missing:
        raise StepError(
            f"the index lacks {', '.join(missing)} (it lists {', '.join(found) or 'nothing'}): "
            "export every platform of the matrix as a platform variant"
        )


# -- crane: argv and answers ---------------------------------------------------------------


def login_argv(crane: str, address: str, username: str) -> list[str]:
    """The password goes on stdin, never in argv."""
    return [crane, "auth", "login", address, "-u", username, "--password-stdin"]


def digest_argv(crane: str, ref: str) -> list[str]:
    return [crane, "digest", ref]


def push_argv(crane: str, layout: str, ref: str, root: LayoutRoot) -> list[str]:
    return [crane, "push", *(["--index"] if root.use_index_flag else []), layout, ref]


def tag_argv(crane: str, digest_ref: str, tag: str) -> list[str]:
    return [crane, "tag", digest_ref, tag]


def manifest_argv(crane: str, ref: str) -> list[str]:
    return [crane, "manifest", ref]


_NOT_FOUND = ("MANIFEST_UNKNOWN", "NAME_UNKNOWN", "404 Not Found", "unexpected status code 404")


def read_digest(code: int, stdout: str, stderr: str, ref: str) -> str | None:
    """``crane digest``'s answer: the digest, None when the tag does not exist, else an error."""
    if code == 0:
        digest = stdout.strip()
        if not _DIGEST.match(digest):
            raise StepError(f"crane digest {ref} printed {digest[:80]!r}, not a sha256 digest")
        return digest
    if any(marker in stderr for marker in _NOT_FOUND):
        return None
    if "UNAUTHORIZED" in stderr or "401" in stderr or "DENIED" in stderr:
        raise StepError(
            f"the registry refused to say what {ref} points at (authentication): check "
            "--username and --password, and that the token may read and write this repository",
            stderr[-2000:],
        )
    raise StepError(
        f"could not read {ref} from the registry (crane digest exit {code}): is the address "
        "right and the registry reachable?",
        stderr[-2000:],
    )


def guard(ref: str, existing: str | None, new: str, force: bool) -> bool:
    """True when ``ref`` must be pushed. A release tag on other content is never moved.

    Same digest: already published (a re-run), nothing to move. ``force`` is
    the only way to re-point a release tag, and it says so in the result.
    """
    if existing is None:
        return True
    if existing == new:
        return False
    if force:
        return True
    raise ImmutableTagError(
        f"{ref} already exists with digest {existing}, and this release built {new}: a release "
        "tag is never moved. Publish a new version, or pass --force if re-pointing it is "
        "intended (users pinned to the tag will get different bytes)"
    )


# -- one image's publish, run by any runner -----------------------------------------------

Runner = Callable[[list[str], str | None], tuple[int, str, str]]


@dataclass
class ImagePlan:
    """One image of the matrix, ready to push from an OCI layout on the runner's disk."""

    name: str
    repository: str  # ADDRESS/NAMESPACE/REPO
    layout: str  # path of the OCI layout directory
    platforms: tuple[str, ...]
    tags: Tags
    root: LayoutRoot

    @property
    def digest_ref(self) -> str:
        return f"{self.repository}@{self.root.digest}"


@dataclass
class Published:
    name: str
    digest_ref: str
    tags: list[str]
    platforms: dict[str, str]
    pushed: bool  # False when the release tag already held this digest
    forced: bool = False
    round_trips: int = 0  # crane commands that reached the registry

    def to_json(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "digest_ref": self.digest_ref,
            "tags": self.tags,
            "platforms": self.platforms,
            "pushed": self.pushed,
            "forced": self.forced,
        }


@dataclass
class PublishPlan:
    address: str
    images: list[ImagePlan] = field(default_factory=list)
    force: bool = False
    crane: str = "crane"


def plan_image(
    address: str,
    namespace: str,
    name: str,
    layout: str,
    index_json: bytes,
    version: str,
    latest: bool = False,
) -> ImagePlan:
    """Validate everything about one image before any registry call."""
    row = target(name)
    return ImagePlan(
        name=name,
        repository=repository(address, namespace, row),
        layout=layout,
        platforms=row.platforms,
        tags=tags_for(version, latest),
        root=layout_root(index_json),
    )


def _ok(run: Runner, argv: list[str], what: str, stdin: str | None = None) -> str:
    code, out, err = run(argv, stdin)
    if code != 0:
        raise StepError(
            f"{what} failed (exit {code}): see the registry's answer below", err[-2000:]
        )
    return out


def login(run: Runner, crane: str, address: str, username: str, password: str) -> None:
    if username:
        _ok(run, login_argv(crane, address, username), f"crane auth login {address}", password)


def read_release_tags(run: Runner, plan: ImagePlan, crane: str = "crane") -> dict[str, str | None]:
    """What each immutable tag of ``plan`` points at now (None: absent)."""
    found: dict[str, str | None] = {}
    for tag in plan.tags.immutable:
        ref = f"{plan.repository}:{tag}"
        code, out, err = run(digest_argv(crane, ref), None)
        found[tag] = read_digest(code, out, err, ref)
    return found


def publish_image(
    run: Runner,
    plan: ImagePlan,
    force: bool,
    crane: str = "crane",
    existing_tags: dict[str, str | None] | None = None,
) -> Published:
    """Guard, push, tag, read back. Raises before pushing anything if a guard refuses.

    ``existing_tags``: the release tags as :func:`read_release_tags` found them just
    before (saves a round trip per tag); read here when not given.
    """
    trips = 0
    push = False
    forced = False
    if existing_tags is None:
        existing_tags = read_release_tags(run, plan, crane)
        trips += len(existing_tags)
    for tag in plan.tags.immutable:
        ref = f"{plan.repository}:{tag}"
        existing = existing_tags[tag]
        if guard(ref, existing, plan.root.digest, force):
            push = True
            forced = forced or existing is not None
    if push:
        first = f"{plan.repository}:{plan.tags.immutable[0]}"
        out = _ok(run, push_argv(crane, plan.layout, first, plan.root), f"crane push {first}")
        trips += 1
        printed = out.strip().splitlines()[-1] if out.strip() else ""
        if printed != plan.digest_ref:
            raise StepError(
                f"the registry stored {printed or 'nothing'} for {first}, but the layout's digest "
                f"is {plan.root.digest}: the registry rewrote the image (convert media types?)"
            )
        for tag in plan.tags.immutable[1:]:
            _ok(run, tag_argv(crane, plan.digest_ref, tag), f"crane tag {tag}")
            trips += 1
    for tag in plan.tags.moving:
        _ok(run, tag_argv(crane, plan.digest_ref, tag), f"crane tag {tag}")
        trips += 1
    manifest = _ok(run, manifest_argv(crane, plan.digest_ref), f"crane manifest {plan.digest_ref}")
    trips += 1
    if sha256_digest(manifest.encode()) != plan.root.digest:
        raise StepError(f"{plan.digest_ref} read back with other bytes than were pushed")
    platforms = index_platforms(manifest.encode())
    check_platforms(platforms, plan.platforms)
    return Published(
        name=plan.name,
        digest_ref=plan.digest_ref,
        tags=[*plan.tags.immutable, *plan.tags.moving],
        platforms=platforms,
        pushed=push,
        forced=forced,
        round_trips=trips,
    )


def publish(run: Runner, plan: PublishPlan) -> list[Published]:
    """Every image's guards first (nothing is pushed if any release tag would move)."""
    found = []
    for image in plan.images:
        tags = read_release_tags(run, image, plan.crane)
        for tag, existing in tags.items():
            guard(f"{image.repository}:{tag}", existing, image.root.digest, plan.force)
        found.append(tags)
    return [
        publish_image(run, image, plan.force, plan.crane, existing_tags=tags)
        for image, tags in zip(plan.images, found, strict=True)
    ]
