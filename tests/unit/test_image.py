"""The scratch image's recipe, exactly: layout commands, the final-rootfs check, labels."""

from __future__ import annotations

from openfga_release.recipes import image

ROOT, BIN, CA = "/r", "/in/openfga", "/ca.crt"
GUARDED = ["/etc", "/etc/ssl", "/etc/ssl/certs", "/etc/ssl/certs/ca-certificates.crt", "/tmp",
           "/usr", "/usr/bin", "/usr/bin/openfga"]  # fmt: skip


def test_layout_without_overlay():
    assert image.layout_commands(ROOT, BIN, CA, None) == [
        ["mkdir", "-p", "/r"],
        ["install", "-D", "-m", "0755", BIN, "/r/usr/bin/openfga"],
        ["install", "-D", "-m", "0644", CA, "/r/etc/ssl/certs/ca-certificates.crt"],
        ["mkdir", "-p", "/r/tmp"],
        ["chmod", "1777", "/r/tmp"],
        image.verify_command(ROOT, BIN, CA),
    ]


def test_the_overlay_is_checked_then_copied_before_the_checked_files():
    cmds = image.layout_commands(ROOT, BIN, CA, "/ov")
    assert cmds[1][:2] == ["sh", "-c"] and cmds[1][3:] == ["no-links", "/ov", "the overlay",
                                                           *GUARDED]  # fmt: skip
    assert cmds[2] == ["cp", "-R", "/ov/.", "/r/"]
    assert [c[0] for c in cmds[3:5]] == ["install", "install"]
    assert "is a symbolic link in $what" in cmds[1][2]


def test_the_final_check_names_every_guarded_path():
    argv = image.verify_command(ROOT, BIN, CA)
    assert argv[:2] == ["sh", "-c"] and argv[3:] == ["verify-rootfs", ROOT, BIN, CA, *GUARDED]
    script = argv[2]
    for piece in ('cmp -s "$bin" "$root/usr/bin/openfga"',
                  'cmp -s "$ca" "$root/etc/ssl/certs/ca-certificates.crt"',
                  '"$(stat -c %a "$root/tmp")" = 1777', "differs from the checked one",
                  "/tmp must stay a 1777 directory", "is a symbolic link"):  # fmt: skip
        assert piece in script


def test_labels_come_from_the_release():
    assert image.labels("v1.2.3", "abc1234", "2026-01-01T00:00:00Z") == {
        "org.opencontainers.image.title": "openfga",
        "org.opencontainers.image.description":
            "OpenFGA authorization server (static, CGO-free, non-PIE build)",
        "org.opencontainers.image.version": "v1.2.3",
        "org.opencontainers.image.source": "https://github.com/openfga/openfga",
        "org.opencontainers.image.licenses": "Apache-2.0",
        "org.opencontainers.image.revision": "abc1234",
        "org.opencontainers.image.created": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    bare = image.labels("v1.2.3-x.1", None, None)
    assert bare["org.opencontainers.image.revision"] == "v1.2.3-x.1"
    assert "org.opencontainers.image.created" not in bare


def test_the_image_runs_the_binary_as_the_nonroot_user():
    assert (image.BINARY_PATH, image.USER) == ("/usr/bin/openfga", "65532:65532")
    assert image.ENTRYPOINT == ["/usr/bin/openfga"] and image.DEFAULT_ARGS == ["run"]
