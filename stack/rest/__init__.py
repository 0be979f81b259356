"""busymate.stack.rest: a PostgREST-compatible /rest/v1 (contracts/postgrest.md)."""
