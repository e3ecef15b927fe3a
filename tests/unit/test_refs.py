"""One pinning rule for every pulled image, as an allow-list of the OCI reference grammar."""

from __future__ import annotations

import pytest
from openfga_release.recipes import refs
from openfga_release.recipes.refs import ImageRefError

DIGEST = "sha256:" + "a" * 64


@pytest.mark.parametrize(
    ("ref", "name", "tag", "digest"),
    [
        ("golang:1.26.8-bookworm", "golang", "1.26.8-bookworm", None),
        ("registry.example.com:5000/go/golang:1.26.8", "registry.example.com:5000/go/golang",
         "1.26.8", None),
        (f"golang@{DIGEST}", "golang", None, DIGEST),
        (f"golang:1.26.8@{DIGEST}", "golang", "1.26.8", DIGEST),
        ("a/b__c/d-e.f:x", "a/b__c/d-e.f", "x", None),
    ],
)  # fmt: skip
def test_references_parse_like_the_distribution_grammar(ref, name, tag, digest):
    assert refs.parse(ref) == refs.ImageRef(name, tag, digest)


@pytest.mark.parametrize(
    "ref",
    [
        "", "Golang:1.26.8", "golang:1.26.8\n", " golang:1.26.8", "golang:1.26.8 ", "golang:",
        "golang:-x", "golang@sha256:abc", f"golang@sha256:{'A' * 64}", "golang:1.26.8@md5:00",
        "/golang:1", "golang//x:1", "golang:" + "1" * 129, "-host/golang:1", "host-/x:1",
    ],
)  # fmt: skip
def test_malformed_references_are_refused(ref):
    with pytest.raises(ImageRefError, match="not valid"):
        refs.parse(ref)


def test_a_128_character_tag_is_the_longest():
    assert refs.parse("golang:" + "1" * 128).tag == "1" * 128


@pytest.mark.parametrize(
    ("ref", "parts"),
    [("golang:1.26.8-bookworm", 3), ("postgres:17.9", 2), ("x:10.0.0", 3), (f"x@{DIGEST}", 3),
     (f"x:latest@{DIGEST}", 3), ("python:3.13.9-slim-bookworm", 3)],
)  # fmt: skip
def test_pinned_references_pass(ref, parts):
    assert refs.check_pinned(ref, what="x", example="x:1.2.3", parts=parts).name


@pytest.mark.parametrize(
    ("ref", "parts"),
    [("golang", 3), ("golang:latest", 3), ("golang:1.26", 3), ("golang:1.26-bookworm", 3),
     ("golang:bookworm", 3), ("postgres:17", 2), ("postgres:17-bookworm", 2), ("x:v1.2.3", 3)],
)  # fmt: skip
def test_moving_tags_are_refused_naming_the_fix(ref, parts):
    with pytest.raises(ImageRefError) as err:
        refs.check_pinned(ref, what="Go", example="golang:1.26.8-bookworm", parts=parts)
    msg = str(err.value)
    assert "Go image" in msg and "not pinned" in msg and "golang:1.26.8-bookworm" in msg


def test_version_reads_the_leading_numbers_of_the_tag():
    assert refs.parse("postgres:17.9-bookworm").version == (17, 9)
    assert refs.parse("x:1.26.8rc1").version == (1, 26, 8)
    assert refs.parse("x:bookworm").version is None
    assert refs.parse(f"x@{DIGEST}").version is None


def test_the_python_image_is_patch_pinned():
    assert refs.check_pinned(refs.PYTHON_IMAGE, what="Python", example="", parts=3).version == (
        3, 13, 9,
    )  # fmt: skip


def test_messages_word_for_word():
    with pytest.raises(ImageRefError) as err:
        refs.parse("Bad Ref")
    assert str(err.value) == (
        "image reference 'Bad Ref' is not valid: write it as name:tag or name@sha256:<digest>, "
        "with a lowercase name and no spaces"
    )
