-- Purpose: wipe captured traffic on purpose (the MCP server's wipe_entries tool, issue 20): one workspace's
-- entries, narrowed to a host and/or a time range, or all of them when the caller says so explicitly.
-- Defines:
--   function private.wipe_entries(uuid,text,timestamp with time zone,timestamp with time zone,boolean)
--   function public.wipe_entries(uuid,text,timestamp with time zone,timestamp with time zone,boolean)
-- Caveats: the gate is entries:edit (the section's edit, which no built-in role but admin grants: members and
-- viewers read traffic, they do not destroy it) in the workspace concerned: admins in every workspace, a role
-- with entries:edit in the caller's own workspaces only, so a member of another workspace is refused (42501,
-- the same answer whether the workspace exists or not). Without a host or a time it would wipe the whole
-- workspace, so that needs `everything => true`; otherwise it is refused (22023). The host matches exactly;
-- `since` is inclusive and `until` exclusive. It answers the number of rows deleted. Entries carry no foreign
-- keys (resend_requests keeps an entry id without one), so nothing else changes; no API role holds DELETE on
-- entries, hence the definer.

create or replace function private.wipe_entries(
    ws uuid, only_host text, from_time timestamptz, to_time timestamptz, everything boolean
)
returns bigint
language plpgsql
security definer
set search_path = ''
as $$
declare
    wiped bigint;
begin
    -- A definer: no API role may delete entries; the checks below are the gate.
    perform private.require_capability('entries', 'edit', 'wipe captured traffic');
    if ws is null or not ws = any(private.workspaces_with('entries', 'edit')) then
        raise exception using
            errcode = '42501', message = format('you may not wipe traffic in workspace %s', coalesce(ws::text, 'null')),
            hint = 'Only an admin, or a member of that workspace whose role has entries:edit, may.';
    end if;
    if only_host is not null and (btrim(only_host) = '' or length(only_host) > 253) then
        raise exception using errcode = '22023', message = 'host is a host name of 1 to 253 characters';
    end if;
    if from_time is not null and to_time is not null and from_time >= to_time then
        raise exception using errcode = '22023', message = 'since must be before until';
    end if;
    if only_host is null and from_time is null and to_time is null and everything is not true then
        raise exception using
            errcode = '22023', message = 'name a host or a time range (since, until) to wipe',
            hint = 'To wipe every entry of the workspace, pass everything => true.';
    end if;
    delete from public.entries as e
    where
        e.workspace_id = ws
        and (only_host is null or e.host = btrim(only_host))
        and (from_time is null or e.captured_at >= from_time)
        and (to_time is null or e.captured_at < to_time);
    get diagnostics wiped = row_count;
    return wiped;
end;
$$;
comment on function private.wipe_entries(uuid, text, timestamptz, timestamptz, boolean) is
'Delete one workspace''s entries matching a host and/or [since, until), or all with everything (entries:edit there).';
revoke execute on function private.wipe_entries(uuid, text, timestamptz, timestamptz, boolean) from public, anon;
grant execute on function private.wipe_entries(uuid, text, timestamptz, timestamptz, boolean)
to authenticated, service_role;

create function public.wipe_entries(
    workspace_id uuid, host text default null, since timestamptz default null, until timestamptz default null,
    everything boolean default false
) returns bigint
language sql as $$ select private.wipe_entries(workspace_id, host, since, until, everything) $$;
comment on function public.wipe_entries(uuid, text, timestamptz, timestamptz, boolean) is
'Wipe captured traffic of one workspace: a host (exact), a time range [since, until), or both; the whole '
'workspace only with everything => true. Answers the rows deleted (entries:edit in that workspace).';
revoke execute on function public.wipe_entries(uuid, text, timestamptz, timestamptz, boolean) from public, anon;
grant execute on function public.wipe_entries(uuid, text, timestamptz, timestamptz, boolean)
to authenticated, service_role;
