"""The layers hold (docs/ARCHITECTURE.md): recipes and standalone scripts never import the
Dagger SDK (a ruff rule fails CI on one), standalone scripts import nothing from the package,
and main.py stays the API surface."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
PACKAGE = REPO / "ci" / "src" / "openfga_release"
RUFF = str(Path(sys.executable).with_name("ruff"))


def ruff_on(path: str, source: str) -> subprocess.CompletedProcess[str]:
    """Lint ``source`` as if it were the file ``path`` (ruff picks that folder's config)."""
    return subprocess.run(
        [RUFF, "check", "--no-cache", "--stdin-filename", path, "-"],
        input=source, capture_output=True, text=True, cwd=REPO,
    )  # fmt: skip


@pytest.mark.parametrize("layer", ["recipes", "standalone"])
@pytest.mark.parametrize(
    "source", ["import dagger\n", "from dagger import dag\n", "import dagger.mod\n"]
)
def test_the_lint_rule_fails_on_a_dagger_import_in_the_plain_layers(layer, source):
    result = ruff_on(f"ci/src/openfga_release/{layer}/new_module.py", source)
    assert result.returncode == 1
    assert "TID251" in result.stdout and "plain modules never import dagger" in result.stdout


@pytest.mark.parametrize("layer", ["recipes", "standalone"])
def test_plain_code_passes_the_same_rule(layer):
    ok = ruff_on(f"ci/src/openfga_release/{layer}/new_module.py", "import json\n\nprint(json)\n")
    assert ok.returncode == 0, ok.stdout


def test_the_wiring_may_import_dagger():
    result = ruff_on("ci/src/openfga_release/new_wiring.py", "import dagger\n\nprint(dagger)\n")
    assert result.returncode == 0, result.stdout


def imports_of(path: Path) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text())
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom):
            out.append((node.level, node.module or ""))
        elif isinstance(node, ast.Import):
            out += [(0, alias.name) for alias in node.names]
    return out


@pytest.mark.parametrize("script", sorted((PACKAGE / "standalone").glob("[!_]*.py")), ids=str)
def test_standalone_scripts_import_nothing_from_the_package(script):
    for level, module in imports_of(script):
        assert level == 0, f"{script.name}: relative import of {module}"
        assert not module.startswith("openfga_release"), f"{script.name}: imports {module}"


PLAIN = sorted([*(PACKAGE / "recipes").rglob("*.py"), *(PACKAGE / "standalone").glob("*.py")])


@pytest.mark.parametrize("module", PLAIN, ids=str)
def test_no_plain_module_imports_the_sdk(module):
    """The same rule as ruff's, read from the syntax tree (a second, independent check)."""
    assert not [m for _, m in imports_of(module) if m == "dagger" or m.startswith("dagger.")]


def test_main_is_the_api_surface_only():
    lines = (PACKAGE / "main.py").read_text().splitlines()
    assert len(lines) <= 300, f"main.py has {len(lines)} lines: move wiring into its own file"
