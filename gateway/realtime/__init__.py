"""/realtime/v1: a Supabase Realtime-compatible server (docs/realtime.md)."""
