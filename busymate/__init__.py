"""Busymate: capture HTTPS traffic and watch it live, on a Supabase-style Postgres."""

from __future__ import annotations

__version__ = "0.1.0"
