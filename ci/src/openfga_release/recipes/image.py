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

    The overlay (``images/openfga/rootfs``: ``/etc/passwd`` for the non-root user)
    goes first, so the checked binary and the CA bundle are written after it and
    win; the last command proves it (:func:`verify_command`): an overlay can add
    files but never replace, or link away, what was checked. The server needs a
    writable ``/tmp`` (1777, like any /tmp).
    """
    cmds = [["mkdir", "-p", root]]
    if overlay:
        cmds.append(_no_links_command(overlay, "the overlay"))
        cmds.append(["cp", "-R", overlay + "/.", root + "/"])
    cmds += [
        ["install", "-D", "-m", "0755", binary, root + BINARY_PATH],
        ["install", "-D", "-m", "0644", ca_bundle, root + CA_BUNDLE_PATH],
        ["mkdir", "-p", root + "/tmp"],
        ["chmod", "1777", root + "/tmp"],
        verify_command(root, binary, ca_bundle),
    ]
    return cmds


GUARDED = (BINARY_PATH, CA_BUNDLE_PATH, "/tmp")  # what an overlay may never replace


def _guarded_paths() -> list[str]:
    return sorted({p for path in GUARDED for p in _parents(path)} | set(GUARDED))


def _no_links_command(tree: str, what: str) -> list[str]:
    """Fail if any guarded path (or a parent of one) is a symbolic link in ``tree``."""
    script = (
        'tree=$1; what=$2; shift 2; for p in "$@"; do if [ -L "$tree$p" ]; then '
        'echo "overlay: $p is a symbolic link in $what: the overlay may add files, not replace '
        'or link away the checked binary, the CA bundle or /tmp" >&2; exit 1; fi; done'
    )
    return ["sh", "-c", script, "no-links", tree, what, *_guarded_paths()]


def verify_command(root: str, binary: str, ca_bundle: str) -> list[str]:
    """Fail unless the final rootfs holds exactly the checked binary and CA bundle as
    regular files, with no symbolic link on their paths, and a real 1777 /tmp."""
    script = (
        'root=$1; bin=$2; ca=$3; shift 3; '
        'for p in "$@"; do if [ -L "$root$p" ]; then echo "overlay: $p is a symbolic link" >&2; '
        "exit 1; fi; done; "
        f'cmp -s "$bin" "$root{BINARY_PATH}" && cmp -s "$ca" "$root{CA_BUNDLE_PATH}" || '
        '{ echo "overlay: the binary or CA bundle differs from the checked one" >&2; exit 1; }; '
        f'[ -d "$root/tmp" ] && [ "$(stat -c %a "$root/tmp")" = 1777 ] || '
        '{ echo "overlay: /tmp must stay a 1777 directory" >&2; exit 1; }'
    )
    return ["sh", "-c", script, "verify-rootfs", root, binary, ca_bundle, *_guarded_paths()]


def _parents(path: str) -> list[str]:
    parts = path.strip("/").split("/")[:-1]
    return ["/" + "/".join(parts[: i + 1]) for i in range(len(parts))]


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
