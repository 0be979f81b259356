"""Import boundaries (docs/functions.md, issue 16): what each part of the source tree may import, checked by
walking its syntax trees, imports inside functions included.

- proxy/, functions/ and busymate/*.py are clients of the API: they never import the supervisor
  (busymate.stack) nor the gateway (busymate.gateway), nor the CLI; a function imports only the shared library
  (busymate.*) and what its handler is given.
- The supervisor (stack/) and the gateway (gateway/) do not import each other: the supervisor starts the
  gateway as a process. The CLI uses the supervisor, never the gateway's modules.
- Nothing outside cli/ and bench/ calls print(): below the CLI, output goes through logging or a return value.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# folder of the source tree -> the package it installs as (pyproject.toml's package-dir)
PACKAGES = {
    "busymate": "busymate",
    "stack": "busymate.stack",
    "gateway": "busymate.gateway",
    "proxy": "busymate.proxy",
    "functions": "busymate.functions",
    "cli": "busymate.cli",
}
# package -> the packages it may not import
FORBIDDEN = {
    "busymate": (
        "busymate.stack",
        "busymate.gateway",
        "busymate.cli",
        "busymate.proxy",
        "busymate.functions",
    ),
    "busymate.stack": ("busymate.gateway", "busymate.cli", "busymate.proxy", "busymate.functions"),
    "busymate.gateway": ("busymate.stack", "busymate.cli", "busymate.proxy", "busymate.functions"),
    "busymate.cli": ("busymate.gateway", "busymate.functions"),
    "busymate.proxy": ("busymate.stack", "busymate.gateway", "busymate.cli", "busymate.functions"),
    "busymate.functions": ("busymate.stack", "busymate.gateway", "busymate.cli", "busymate.proxy"),
}
MAY_PRINT = ("cli", "bench")


@dataclass(frozen=True)
class Violation:
    """One import or print() where it is not allowed."""

    path: str
    line: int
    what: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.what}"


def _imported(node: ast.Import | ast.ImportFrom, package: str) -> list[str]:
    """The absolute module names an import statement brings in (`from a import b` counts as a and a.b)."""
    if isinstance(node, ast.Import):
        return [alias.name for alias in node.names]
    base = node.module or ""
    if node.level:
        parts = package.split(".")
        parts = parts[: len(parts) - (node.level - 1)] if node.level > 1 else parts
        base = ".".join([*parts, base] if base else parts)
    return [base, *(f"{base}.{alias.name}" for alias in node.names)]


def _within(module: str, package: str) -> bool:
    return module == package or module.startswith(package + ".")


def check(root: Path) -> list[Violation]:
    """Every boundary crossed in the source tree at `root`."""
    found: list[Violation] = []
    for folder, package in PACKAGES.items():
        files = sorted((root / folder).glob("*.py" if folder == "busymate" else "**/*.py"))
        for path in files:
            relative = path.relative_to(root).as_posix()
            tree = ast.parse(path.read_text(), relative)
            forbidden = FORBIDDEN.get(package, ())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import | ast.ImportFrom):
                    for module in _imported(node, package):
                        hit = next((f for f in forbidden if _within(module, f)), None)
                        if hit is not None:
                            found.append(Violation(relative, node.lineno, f"{package} imports {hit}"))
                            break
                elif (
                    isinstance(node, ast.Call)
                    and isinstance(node.func, ast.Name)
                    and node.func.id == "print"
                    and folder not in MAY_PRINT
                ):
                    found.append(Violation(relative, node.lineno, "print() outside cli/ and bench/"))
    return found


def test_the_source_tree_keeps_its_boundaries() -> None:
    assert [str(v) for v in check(ROOT)] == []


def _tree(tmp_path: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text)
    return tmp_path


def test_the_checker_reports_each_kind_of_violation(tmp_path: Path) -> None:
    root = _tree(
        tmp_path,
        {
            "functions/bad.py": "from busymate.gateway.functions import FunctionRequest\n",
            "functions/lazy.py": "def f():\n    import busymate.stack.jwt\n",
            "proxy/bad.py": "from busymate import stack\n",
            "busymate/bad.py": "from busymate.cli import main\n",
            "busymate/relative.py": "from .stack import db\n",
            "stack/loud.py": "print('hi')\n",
            "stack/reach.py": "from busymate.gateway import server\n",
            "gateway/reach.py": "from busymate.stack.postgres import Cluster\n",
            "cli/reach.py": "import busymate.gateway.rest.handler\n",
            "cli/sign.py": "from busymate.functions.pair import handle\n",
            "cli/ok.py": "import busymate.stack\nprint('fine')\n",
            "functions/ok.py": "from busymate.functions_api import FunctionRequest\n",
        },
    )
    assert [str(v) for v in check(root)] == [
        "busymate/bad.py:1: busymate imports busymate.cli",
        "busymate/relative.py:1: busymate imports busymate.stack",
        "stack/loud.py:1: print() outside cli/ and bench/",
        "stack/reach.py:1: busymate.stack imports busymate.gateway",
        "gateway/reach.py:1: busymate.gateway imports busymate.stack",
        "proxy/bad.py:1: busymate.proxy imports busymate.stack",
        "functions/bad.py:1: busymate.functions imports busymate.gateway",
        "functions/lazy.py:2: busymate.functions imports busymate.stack",
        "cli/reach.py:1: busymate.cli imports busymate.gateway",
        "cli/sign.py:1: busymate.cli imports busymate.functions",
    ]


def test_a_clean_tree_passes(tmp_path: Path) -> None:
    root = _tree(tmp_path, {"functions/ok.py": "from busymate import tokens\n", "cli/x.py": "print(1)\n"})
    assert check(root) == []
