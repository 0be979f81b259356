"""Moved to the registry (busymate.functions.busybro.tools.paging), which BusyBro's list tools and the MCP
server's share; re-exported here for callers of the old path."""

from busymate.functions.busybro.tools.paging import CURSOR_SCHEMA, Keyset, decode, encode

__all__ = ["CURSOR_SCHEMA", "Keyset", "decode", "encode"]
