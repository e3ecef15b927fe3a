"""Write real multi-platform OCI image layouts, byte for byte reproducible.

The layout has the shape Dagger's ``Container.as_tarball(platform_variants=...)``
exports (BuildKit's OCI exporter): ``index.json`` holds one descriptor, an image
index, which lists one image manifest per platform. Each image is one gzip layer
(a tar of the given files, mtime 0, root-owned) and a config naming its platform.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from pathlib import Path

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def _blob(root: Path, data: bytes) -> tuple[str, int]:
    digest = hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{digest}", len(data)


def _layer(files: dict[str, bytes]) -> tuple[bytes, str]:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, content in sorted(files.items()):
            info = tarfile.TarInfo(name)
            info.size, info.mode, info.mtime = len(content), 0o755, 0
            tar.addfile(info, io.BytesIO(content))
    diff_id = "sha256:" + hashlib.sha256(raw.getvalue()).hexdigest()
    return gzip.compress(raw.getvalue(), mtime=0), diff_id


def _json(doc: dict) -> bytes:
    return json.dumps(doc, separators=(",", ":"), sort_keys=True).encode()


def write_layout(root: Path, images: dict[str, dict[str, bytes]]) -> str:
    """``images``: platform -> {path in image: bytes}. Returns the index digest."""
    root.mkdir(parents=True, exist_ok=True)
    (root / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    manifests = []
    for platform, files in sorted(images.items()):
        os_, arch = platform.split("/")[:2]
        layer, diff_id = _layer(files)
        layer_digest, layer_size = _blob(root, layer)
        config = {
            "architecture": arch,
            "os": os_,
            "config": {"Entrypoint": ["/usr/bin/openfga"], "User": "65532:65532"},
            "rootfs": {"type": "layers", "diff_ids": [diff_id]},
        }
        config_digest, config_size = _blob(root, _json(config))
        manifest = {
            "schemaVersion": 2,
            "mediaType": OCI_MANIFEST,
            "config": {"mediaType": OCI_CONFIG, "digest": config_digest, "size": config_size},
            "layers": [{"mediaType": OCI_LAYER, "digest": layer_digest, "size": layer_size}],
        }
        digest, size = _blob(root, _json(manifest))
        manifests.append(
            {
                "mediaType": OCI_MANIFEST,
                "digest": digest,
                "size": size,
                "platform": {"architecture": arch, "os": os_},
            }
        )
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": manifests}
    index_digest, index_size = _blob(root, _json(index))
    top = {
        "schemaVersion": 2,
        "mediaType": OCI_INDEX,
        "manifests": [{"mediaType": OCI_INDEX, "digest": index_digest, "size": index_size}],
    }
    (root / "index.json").write_bytes(_json(top))
    return index_digest


def recipes_tree(dest: Path) -> Path:
    """What the pipeline's publish container holds on PYTHONPATH (registry.recipes_package):
    an empty ``openfga_release/__init__.py`` and the plain ``recipes`` package, nothing else
    (so ``python -m openfga_release.recipes.release`` runs without dagger or the module)."""
    import shutil

    src = Path(__file__).resolve().parents[2] / "ci" / "src" / "openfga_release" / "recipes"
    pkg = dest / "openfga_release"
    pkg.mkdir(parents=True, exist_ok=True)
    (pkg / "__init__.py").write_text("")
    shutil.copytree(src, pkg / "recipes", ignore=shutil.ignore_patterns("__pycache__", "*.toml"),
                    dirs_exist_ok=True)  # fmt: skip
    return dest
