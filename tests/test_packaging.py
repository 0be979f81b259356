"""`pip install .` ships every subpackage under the busymate name; the editable install runs the suite."""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

from tests.conftest import PROJECT_DIR

MODULES = (
    "busymate.settings",
    "busymate.stack.postgres",
    "busymate.stack.migrate",
    "busymate.stack.pgtap",
    "busymate.functions",
    "busymate.proxy",
    "busymate.cli.main",
    "busymate.cli.bmc",
)


def test_the_wheel_holds_and_imports_every_module(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), str(PROJECT_DIR)],
        check=True,
        capture_output=True,
        timeout=300,
    )
    (wheel,) = tmp_path.glob("busymate-*.whl")
    with zipfile.ZipFile(wheel) as archive:
        names = set(archive.namelist())
        archive.extractall(tmp_path / "site")
    for module in MODULES:
        assert f"{module.replace('.', '/')}.py" in names or f"{module.replace('.', '/')}/__init__.py" in names
    assert "busymate/py.typed" in names
    code = "import importlib, sys\nfor m in sys.argv[1:]:\n    print(importlib.import_module(m).__file__)"
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site")}
    out = subprocess.run(
        [sys.executable, "-c", code, *MODULES],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tmp_path,
    )
    files = out.stdout.split()
    assert len(files) == len(MODULES)
    assert all(f.startswith(str(tmp_path / "site")) for f in files), files
