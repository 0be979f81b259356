-- Purpose: let postgres_changes subscribers follow entries and breakpoint events.
-- Affects: publication supabase_realtime (adds the tables; publishes partitions through their root).
-- Caveats: with publish_via_partition_root, a change to private.entries_YYYYMMDD arrives as public.entries,
-- which is the table subscribers name and whose policies decide what they get.

alter publication supabase_realtime set (publish_via_partition_root = true);
alter publication supabase_realtime add table public.entries, public.breakpoint_events;
