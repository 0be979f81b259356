-- Purpose: let postgres_changes subscribers follow the identity, device and catalog tables.
-- Affects: publication supabase_realtime.
-- Caveats: per-subscriber RLS still decides which rows each subscriber gets. The traffic tables are added by
-- their own migration.

alter publication supabase_realtime add table
public.devices,
public.device_status,
public.workspace_tabs,
public.tags,
public.service_groups,
public.settings_global,
public.settings_device;
