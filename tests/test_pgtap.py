"""Every pgTAP file under supabase/tests is one test here, so `make test` reports and fails on each."""

from __future__ import annotations

from pathlib import Path

import pytest

from busymate.settings import Settings
from busymate.stack import pgtap
from tests.conftest import PROJECT_DIR

FILES = sorted((PROJECT_DIR / "supabase" / "tests").rglob("*.test.sql"))


def test_there_are_pgtap_files() -> None:
    assert len(FILES) >= 4, "the pgTAP suite went missing"


@pytest.mark.pgtap
@pytest.mark.parametrize("path", FILES, ids=[p.name for p in FILES])
def test_pgtap_file(pg: Settings, pgtap_db: str, path: Path) -> None:
    result = pgtap.run_file(pg, pgtap_db, path)
    assert result.ok, f"{result.problem()}\n{result.output}"
    assert result.planned == result.passed > 0
