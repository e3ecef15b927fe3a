"""Renovate covers every pinned version in the repository.

The test finds pins the way a reviewer would (version constants, image tags,
Go tool rows, requirement strings, engine and CLI versions, action SHAs, CI
images, pyproject ``==`` pins) and checks each is matched: by a custom regex
manager of ``renovate.json`` (run here with Python's ``re``: the patterns use
only syntax both engines read the same way) whose file pattern takes the file,
or by a built-in manager configured for that file. A new pin that no manager
reads fails here, naming the file and line. The config itself is validated
against Renovate's schema (check-jsonschema's vendored copy) here, and by
Renovate's own validator in tests/real/test_renovate_validator.py.
"""

from __future__ import annotations

import json
import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
CONFIG = json.loads((ROOT / "renovate.json").read_text())

# Not pins: versions that name no download and must not move on their own.
NOT_PINS = {
    ("tests/support/kube.py", "KUBE_GO_VERSION"): "the go directive of a throwaway module",
}

PY_DIRS = ("ci/src/", "tests/support/", "benchmarks/")
# Tests proper: their image strings are test data (never pulled); their *_VERSION
# constants are tools they install, so those count.
TEST_DIRS = ("tests/real/", "tests/unit/", "tests/plan/")
IMAGE_STRING = re.compile(r'"[a-z0-9][a-z0-9._/-]*:v?\d+\.\d+[A-Za-z0-9_.+-]*"')
VERSION_CONSTANT = re.compile(r'^[ \t]*([A-Z][A-Z0-9_]*_VERSION)[ \t]*=[ \t]*"v?\d[^"]*"', re.M)
GO_TOOL_ROW = re.compile(r'GoTool\("[\w-]+", "[^"]+", "v\d[^"]*"')
REQUIREMENT = re.compile(r'"[A-Za-z0-9_.-]+(?:\[[\w,-]+\])?==\d[^"]*"')
YAML_PINS = re.compile(
    r"^[ \t]*(?:-[ \t]+)?(?:uses|image|newTag):[ \t]*\S+|^[ \t]*-[ \t]+docker:\S+", re.M
)
DAGGER_CLI = re.compile(r"DAGGER_VERSION[:=] ?\"v?\d")


@dataclass(frozen=True)
class Pin:
    path: str
    line: int
    text: str


def repo_files() -> list[str]:
    out = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout  # fmt: skip
    return sorted(p for p in out.splitlines() if (ROOT / p).is_file())


def line_of(text: str, offset: int) -> int:
    return text.count("\n", 0, offset) + 1


def find_pins(path: str, text: str) -> list[Pin]:
    pins: list[Pin] = []

    def add(match: re.Match[str]) -> None:
        line = line_of(text, match.start())
        pins.append(Pin(path, line, text.splitlines()[line - 1].strip()))

    if path.endswith(".py") and path.startswith(PY_DIRS):
        for pattern in (IMAGE_STRING, GO_TOOL_ROW, REQUIREMENT):
            for m in pattern.finditer(text):
                if (
                    not text[text.rfind("\n", 0, m.start()) + 1 : m.start()]
                    .lstrip()
                    .startswith("#")
                ):
                    add(m)
        for m in VERSION_CONSTANT.finditer(text):
            if (path, m.group(1)) not in NOT_PINS:
                add(m)
    elif path.endswith(".py") and path.startswith(TEST_DIRS):
        for m in VERSION_CONSTANT.finditer(text):
            if (path, m.group(1)) not in NOT_PINS:
                add(m)
    elif path == "dagger.json":
        for m in re.finditer(r'"engineVersion"', text):
            add(m)
    elif path.endswith("pyproject.toml"):
        for m in re.finditer(r'^[ \t]*"[^"]+==[^"]+",?', text, re.M):
            add(m)
    elif path.startswith("ci-templates/"):
        for pattern in (DAGGER_CLI, YAML_PINS):
            for m in pattern.finditer(text):
                if pattern is DAGGER_CLI or re.search(r"[:@]v?\d|@[0-9a-f]{40}", m.group(0)):
                    add(m)
    elif path.startswith("manifests/") and path.endswith((".yaml", ".yml")):
        for m in YAML_PINS.finditer(text):
            if re.search(r":\s*\S+:v?\d|newTag:", m.group(0)):
                add(m)
    return pins


def file_patterns(patterns: list[str]) -> list[re.Pattern[str]]:
    out = []
    for p in patterns:
        assert p.startswith("/") and p.endswith("/"), f"use /regex/ file patterns here: {p}"
        out.append(re.compile(p[1:-1]))
    return out


def js_to_py(pattern: str) -> re.Pattern[str]:
    return re.compile(
        pattern.replace("(?<", "(?P<").replace("(?P<=", "(?<=").replace("(?P<!", "(?<!")
    )


def covered_lines(path: str, text: str) -> set[int]:
    """Lines a custom manager's regex matches (with a currentValue) in ``path``."""
    lines: set[int] = set()
    for manager in CONFIG.get("customManagers", []):
        if not any(p.search(path) for p in file_patterns(manager["managerFilePatterns"])):
            continue
        for source in manager["matchStrings"]:
            for m in js_to_py(source).finditer(text):
                assert m.group("currentValue"), (manager["description"], m.group(0))
                first, last = line_of(text, m.start()), line_of(text, m.end())
                lines.update(range(first, last + 1))
    return lines


BUILT_IN = ("pep621", "github-actions", "gitlabci", "kustomize")


def built_in_for(path: str) -> str | None:
    for name in BUILT_IN:
        patterns = CONFIG.get(name, {}).get("managerFilePatterns", [])
        if any(p.search(path) for p in file_patterns(patterns)):
            return name
    return None


def all_pins() -> list[Pin]:
    pins = []
    for path in repo_files():
        try:
            text = (ROOT / path).read_text()
        except (UnicodeDecodeError, OSError):
            continue
        pins.extend(find_pins(path, text))
    return pins


def test_the_scanner_finds_the_known_pins() -> None:
    texts = {(p.path, p.text) for p in all_pins()}
    expected = [
        ("ci/src/openfga_release/recipes/releases.py", 'GO_VERSION = "'),
        ("ci/src/openfga_release/recipes/releases.py", 'DEFAULT_VERSION = "v'),
        ("ci/src/openfga_release/recipes/postgres.py", '"postgres:'),
        ("ci/src/openfga_release/recipes/publish.py", 'CRANE_VERSION = "v'),
        ("ci/src/openfga_release/recipes/sign.py", 'COSIGN_VERSION = "v'),
        ("ci/src/openfga_release/recipes/release.py", "cyclonedx-python-lib"),
        ("dagger.json", "engineVersion"),
        ("pyproject.toml", "dagger-io=="),
        ("ci/pyproject.toml", "dagger-io=="),
        ("ci-templates/github-actions.yml", "dagger/dagger-for-github@"),
        ("ci-templates/github-actions.yml", "DAGGER_VERSION"),
        ("ci-templates/gitlab-ci.yml", "image: docker:"),
        ("ci-templates/dagger-ci.sh", "DAGGER_VERSION"),
        ("tests/support/tools.py", 'GoTool("actionlint"'),
        ("tests/real/test_renovate_validator.py", 'RENOVATE_VERSION = "'),
    ]
    for path, fragment in expected:
        assert any(p == path and fragment in t for p, t in texts), (path, fragment)


@pytest.mark.parametrize("pin", all_pins(), ids=lambda p: f"{p.path}:{p.line}")
def test_every_pin_is_matched_by_a_renovate_manager(pin: Pin) -> None:
    if built_in_for(pin.path):
        return
    text = (ROOT / pin.path).read_text()
    assert pin.line in covered_lines(pin.path, text), (
        f"{pin.path}:{pin.line} pins a version no Renovate manager reads: {pin.text!r}. "
        "Add a customManagers entry (or a file pattern) to renovate.json"
    )


def test_versions_that_must_agree_are_extracted_alike() -> None:
    """The engine and the CLI pins resolve to the same package, so one PR moves them all."""
    engine = json.loads((ROOT / "dagger.json").read_text())["engineVersion"].lstrip("v")
    for path in ("ci-templates/github-actions.yml", "ci-templates/gitlab-ci.yml",
                 "ci-templates/dagger-ci.sh"):  # fmt: skip
        found = re.findall(r'DAGGER_VERSION[:=] ?"v?(\d[^"]*)"', (ROOT / path).read_text())
        assert found == [engine], path
    names = {m.get("depNameTemplate") for m in CONFIG["customManagers"]}
    assert "dagger/dagger" in names
    group = next(r for r in CONFIG["packageRules"] if r.get("groupName") == "dagger")
    assert set(group["matchPackageNames"]) >= {"dagger/dagger", "dagger-io"}


def test_config_matches_renovates_schema() -> None:
    venv_bin = Path(__import__("sys").executable).parent
    proc = subprocess.run(
        [str(venv_bin / "check-jsonschema"), "--builtin-schema", "vendor.renovate",
         str(ROOT / "renovate.json")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_a_new_unmanaged_pin_would_fail() -> None:
    """The check is not vacuous: a pin in a file no manager reads is reported."""
    text = 'FOO_VERSION = "1.2.3"\nIMAGE = "redis:7.4.2-bookworm"\n'
    pins = find_pins("ci/src/openfga_release/recipes/newthing.py", text)
    assert len(pins) == 2
    covered = covered_lines("ci/src/openfga_release/recipes/newthing.py", text)
    assert 2 in covered  # an image string: the generic docker manager reads it
    assert 1 not in covered  # a bare version constant: needs its own manager
