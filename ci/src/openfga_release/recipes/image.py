"""The OpenFGA scratch image: where each file goes, who runs it, what it says.

Plain module (no dagger import). ``openfga-image`` runs :func:`layout_commands`
in the Go build container to lay out the root filesystem; the tests run the
same commands into a temporary directory and ``chroot`` into it, so what they
prove is the layout the image gets.
"""

from __future__ import annotations

from .releases import OPENFGA_SOURCE_URL

BINARY_PATH = "/usr/bin/openfga"
CA_BUNDLE_PATH = "/etc/ssl/certs/ca-certificates.crt"
# uid/gid 65532 (the distroless "nonroot" convention), named in the overlay's
# /etc/passwd so logs and `id` show a name.
USER = "65532:65532"
ENTRYPOINT = [BINARY_PATH]
DEFAULT_ARGS = ["run"]
TITLE = "openfga"
DESCRIPTION = "OpenFGA authorization server (static, CGO-free, non-PIE build)"


def layout_commands(root: str, binary: str, ca_bundle: str, overlay: str | None) -> list[list[str]]:
    """Commands that lay out the image's root filesystem under ``root``.

    The server needs a writable ``/tmp`` (1777, like any /tmp); the overlay
    (``images/openfga/rootfs``) is copied last so it can add files such as
    ``/etc/passwd`` for the non-root user.
    """
    cmds = [
        ["install", "-D", "-m", "0755", binary, root + BINARY_PATH],
        ["install", "-D", "-m", "0644", ca_bundle, root + CA_BUNDLE_PATH],
        ["mkdir", "-p", root + "/tmp"],
        ["chmod", "1777", root + "/tmp"],
    ]
    if overlay:
        cmds.append(["cp", "-R", overlay + "/.", root + "/"])
    return cmds


def labels(version: str, commit: str | None, created: str | None) -> dict[str, str]:
    """OCI image labels; ``created`` is the release date, never the build's clock."""
    out = {
        "org.opencontainers.image.title": TITLE,
        "org.opencontainers.image.description": DESCRIPTION,
        "org.opencontainers.image.version": version,
        "org.opencontainers.image.source": OPENFGA_SOURCE_URL,
        "org.opencontainers.image.licenses": "Apache-2.0",
    }
    # A git revision: the commit when the release pins it, else the tag itself.
    out["org.opencontainers.image.revision"] = commit or version
    if created:
        out["org.opencontainers.image.created"] = created
    return out
