-- Purpose: a statement timeout for the device role, as Supabase sets for anon (3 s) and authenticated (8 s).
-- Affects: role device (cluster-wide setting).
-- Caveats: the API server replays a role's settings after SET ROLE, as PostgREST does; a batch of 1000 entries
-- takes well under a second.

alter role device set statement_timeout = '8s';
