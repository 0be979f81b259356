"""The gateway: the API server (`/rest/v1`, `/realtime/v1`, `/auth/v1`, `/functions/v1`) on one port.

It imports the shared library (`busymate/`) and itself, never the supervisor (`busymate.stack`); the
supervisor starts it as a process (`python -m busymate.gateway.server`). docs/architecture.md draws the
layout."""
