"""The API server's log handler: a repeated failure's traceback once, then one line with a count; deep
tracebacks cut to their last frames; the file rotated by size."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from busymate.gateway import logs


@pytest.fixture
def log_file(tmp_path: Path) -> Iterator[Path]:
    root = logging.getLogger()
    saved, level = list(root.handlers), root.level
    path = tmp_path / "api.log"
    logs.configure(path, 4096)
    try:
        yield path
    finally:
        for handler in list(root.handlers):
            root.removeHandler(handler)
            handler.close()
        for handler in saved:
            root.addHandler(handler)
        root.setLevel(level)


def _fail(depth: int) -> None:
    if depth:
        _fail(depth - 1)
    raise ValueError("bad input")


def _log_failure(depth: int = 0) -> None:
    try:
        _fail(depth)
    except ValueError:
        logging.getLogger("busymate.api").exception("unexpected error on GET /rest/v1/devices")


def test_a_repeated_failure_logs_its_traceback_once_then_a_count(log_file: Path) -> None:
    for _ in range(5):
        _log_failure()
    text = log_file.read_text()
    assert text.count("Traceback (most recent call last)") == 1, text
    assert "5 times, traceback logged the first time" in text, text
    assert len(text.splitlines()) < 20, text


def test_a_deep_traceback_keeps_its_last_frames(log_file: Path) -> None:
    _log_failure(depth=500)
    text = log_file.read_text()
    assert text.count('File "') <= logs.TRACEBACK_FRAMES, text[:2000]
    assert "ValueError: bad input" in text


def test_the_file_rotates_by_size(log_file: Path) -> None:
    for n in range(200):
        logging.getLogger("busymate.api").info("line %d %s", n, "x" * 50)
    assert log_file.with_name("api.log.1").exists()
    assert log_file.stat().st_size <= 4096
    assert not log_file.with_name(f"api.log.{logs.BACKUPS + 1}").exists()
