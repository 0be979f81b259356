"""/realtime/v1: a Supabase Realtime-compatible server (contracts/realtime.md)."""
