"""Write a CycloneDX 1.6 JSON SBOM for an OpenFGA binary or image, reproducibly.

Standalone script: the standard library plus the official CycloneDX library
(``cyclonedx-python-lib``, pinned by the caller), importing nothing from this
package. The pipeline runs it in a Python container; the tests run it as is.

Inputs are facts, never the clock:
- ``--buildinfo``: ``go version -m -json BINARY`` (the Go build info embedded in
  the binary: main module, every dependency module with its version and sum,
  the toolchain and build settings);
- ``--dpkg-status``: an image's ``/var/lib/dpkg/status`` (its Debian packages);
- ``--date``: the release's commit time (metadata.timestamp);
- the serial number is a UUIDv5 of the document's identity, so two runs with
  the same inputs give the same bytes.

The document is validated against the official CycloneDX 1.6 JSON schema
(shipped inside the library) before it is written; an invalid one exits 2.

    python3 sbom.py binary --buildinfo bi.json --name openfga --version v1.22.1 \\
        --platform linux/amd64 --sha256 HEX --date 2026-10-28T12:53:36Z --output out.cdx.json
    python3 sbom.py image --buildinfo bi.json --name REPO --version v1.22.1 ...
    python3 sbom.py image --dpkg-status status --name REPO --version v1.22.1 ...
    python3 sbom.py --batch jobs.json     # a JSON list of argument lists, one process
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import uuid
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

from cyclonedx.model import HashAlgorithm, HashType, Property
from cyclonedx.model.bom import Bom, BomMetaData
from cyclonedx.model.component import Component, ComponentType
from cyclonedx.output.json import JsonV1Dot6
from cyclonedx.schema import SchemaVersion
from cyclonedx.validation.json import JsonStrictValidator
from packageurl import PackageURL

SCHEMA = SchemaVersion.V1_6
_SERIAL_NS = uuid.UUID("6f2b4a8e-3c1d-5e7f-9a0b-1c2d3e4f5a6b")  # this project's namespace


def go_purl(path: str, version: str | None) -> PackageURL:
    namespace, _, name = path.rpartition("/")
    return PackageURL(type="golang", namespace=namespace or None, name=name, version=version)


def go_modules(buildinfo: dict[str, Any]) -> Iterator[Component]:
    """Each dependency module as the binary records it (a replacement wins)."""
    for dep in buildinfo.get("Deps") or []:
        mod = dep.get("Replace") or dep
        path, version = mod["Path"], mod.get("Version") or None
        props = [Property(name="go:module:sum", value=mod["Sum"])] if mod.get("Sum") else []
        if dep.get("Replace"):
            props.append(
                Property(name="go:module:replaces", value=f"{dep['Path']}@{dep.get('Version', '')}")
            )
        yield Component(
            type=ComponentType.LIBRARY, name=path, version=version,
            purl=go_purl(path, version), bom_ref=f"pkg:golang/{path}@{version}",
            properties=props,
        )  # fmt: skip


def go_application(
    buildinfo: dict[str, Any], version: str, sha256: str | None
) -> tuple[Component, list[Component]]:
    """The binary (main module, toolchain, build settings) and what it links: stdlib, modules."""
    main = buildinfo.get("Main") or {}
    path = main.get("Path") or buildinfo.get("Path") or "unknown"
    props = [Property(name="go:toolchain", value=buildinfo.get("GoVersion", ""))]
    for setting in buildinfo.get("Settings") or []:
        props.append(Property(name=f"go:build:{setting['Key']}", value=setting.get("Value", "")))
    go_version = buildinfo.get("GoVersion", "").removeprefix("go")
    stdlib = Component(
        type=ComponentType.LIBRARY, name="stdlib", version=go_version,
        purl=PackageURL(type="golang", name="stdlib", version=go_version),
        bom_ref=f"pkg:golang/stdlib@{go_version}",
    )  # fmt: skip
    app = Component(
        type=ComponentType.APPLICATION,
        name=path,
        version=version,
        purl=go_purl(path, version),
        bom_ref=f"app:{path}@{version}",
        hashes=[HashType(alg=HashAlgorithm.SHA_256, content=sha256)] if sha256 else [],
        properties=props,
    )
    return app, [stdlib, *go_modules(buildinfo)]


def dpkg_packages(status: str, distro: str) -> Iterator[Component]:
    """Installed Debian packages from a dpkg status file."""
    for para in status.split("\n\n"):
        fields: dict[str, str] = {}
        for line in para.splitlines():
            if line[:1] in (" ", "\t") or ":" not in line:
                continue
            key, _, value = line.partition(":")
            fields[key] = value.strip()
        if "Package" not in fields or "installed" not in fields.get("Status", ""):
            continue
        name, version, arch = (
            fields["Package"],
            fields.get("Version", ""),
            fields.get("Architecture"),
        )
        qualifiers = {"arch": arch} if arch else {}
        purl = PackageURL(
            type="deb", namespace=distro, name=name, version=version, qualifiers=qualifiers
        )
        yield Component(type=ComponentType.LIBRARY, name=name, version=version, purl=purl,
                        bom_ref=purl.to_string())  # fmt: skip


def build(args: argparse.Namespace) -> Bom:
    buildinfo = json.loads(Path(args.buildinfo).read_text()) if args.buildinfo else None
    props = [Property(name="oci:platform", value=args.platform)] if args.platform else []
    if args.mode == "binary":
        if buildinfo is None:
            raise SystemExit("binary mode needs --buildinfo (go version -m -json BINARY)")
        subject, components = go_application(buildinfo, args.version, args.sha256)
        subject.properties.update(props)
        graph = {subject: list(components)}
    else:
        hashes = [HashType(alg=HashAlgorithm.SHA_256, content=args.sha256)] if args.sha256 else []
        subject = Component(
            type=ComponentType.CONTAINER, name=args.name, version=args.version,
            bom_ref=f"image:{args.name}@{args.version}", properties=props, hashes=hashes,
        )  # fmt: skip
        components = []
        graph = {subject: components}
        if buildinfo is not None:
            app, linked = go_application(buildinfo, args.version, args.binary_sha256)
            components.append(app)
            graph = {subject: [app], app: linked}
            components = components + linked
        if args.dpkg_status:
            status = Path(args.dpkg_status).read_text(errors="replace")
            debs = list(dpkg_packages(status, args.distro))
            graph[subject] = graph[subject] + debs
            components.extend(debs)
    identity = "|".join(
        [args.mode, args.name, args.version, args.platform or "", args.sha256 or ""]
    )
    bom = Bom(
        serial_number=uuid.uuid5(_SERIAL_NS, identity),
        metadata=BomMetaData(
            component=subject,
            timestamp=datetime.fromisoformat(args.date.replace("Z", "+00:00")),
        ),
        components=components,
    )
    for parent, children in graph.items():
        bom.register_dependency(parent, children)
    bom.metadata.tools.components.clear()  # no tool versions that change the bytes on upgrade
    return bom


def render(bom: Bom) -> str:
    text = JsonV1Dot6(bom).output_as_string(indent=2)
    doc = json.loads(text)

    # Canonical bytes: sorted keys, components sorted by bom-ref, one trailing newline.
    def canon(node: Any) -> Any:
        if isinstance(node, dict):
            out = {k: canon(v) for k, v in node.items()}
            for key in ("components", "dependencies"):
                if isinstance(out.get(key), list):
                    out[key] = sorted(
                        out[key], key=lambda c: str(c.get("bom-ref", c.get("ref", "")))
                    )
            return out
        if isinstance(node, list):
            return [canon(v) for v in node]
        return node

    return json.dumps(canon(doc), indent=2, sort_keys=True) + "\n"


def validate(text: str) -> None:
    """Against the official CycloneDX 1.6 JSON schema the library ships."""
    error = JsonStrictValidator(SCHEMA).validate_str(text)
    if error is not None:
        raise SystemExit(
            f"the SBOM does not validate against CycloneDX {SCHEMA.to_version()}: {error}"
        )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("mode", choices=("binary", "image"))
    parser.add_argument("--name", required=True)
    parser.add_argument("--version", required=True)
    parser.add_argument("--date", required=True, help="RFC 3339 release time (the timestamp)")
    parser.add_argument("--platform", default="")
    parser.add_argument("--sha256", default=None, help="of the binary (binary) or manifest (image)")
    parser.add_argument("--binary-sha256", default=None, help="image mode: of the binary inside")
    parser.add_argument("--sha256-of", default=None, help="a file whose SHA-256 is --sha256")
    parser.add_argument("--binary-sha256-of", default=None, help="image mode: the binary inside")
    parser.add_argument("--buildinfo", default=None, help="go version -m -json output")
    parser.add_argument("--dpkg-status", default=None)
    parser.add_argument("--distro", default="debian")
    parser.add_argument("--output", default="-")
    args = parser.parse_args(argv)
    if args.sha256_of:
        args.sha256 = hashlib.sha256(Path(args.sha256_of).read_bytes()).hexdigest()
    if args.binary_sha256_of:
        args.binary_sha256 = hashlib.sha256(Path(args.binary_sha256_of).read_bytes()).hexdigest()
    text = render(build(args))
    try:
        validate(text)
    except SystemExit as exc:
        print(exc, file=sys.stderr)
        return 2
    if args.output == "-":
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text)
    return 0


def batch(path: str) -> int:
    """Several documents in one process (``--batch jobs.json``: a list of argument lists):
    the library and its schema validator are imported once, not once per SBOM."""
    jobs = json.loads(Path(path).read_text())
    return max((main([str(a) for a in job]) for job in jobs), default=0)


if __name__ == "__main__":
    if sys.argv[1:2] == ["--batch"] and len(sys.argv) == 3:
        sys.exit(batch(sys.argv[2]))
    sys.exit(main())
