"""busymate.gateway.rest: a PostgREST-compatible /rest/v1 (docs/rest.md)."""
