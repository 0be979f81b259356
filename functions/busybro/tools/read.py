"""read tools (filled in by issue 19)."""

from __future__ import annotations

from busymate.functions.busybro.core import Tool

TOOLS: list[Tool] = []
