-- Purpose: who is calling, and may they: the helpers every policy and RPC uses.
-- Affects: private.caller_role(), caller_grants(), has_capability(), is_admin(), current_device(), my_workspaces().
-- Caveats: the definers read roles, profiles and devices whatever the caller may see; each helper is stable
-- and called as (select ...) in policies so the planner runs it once per statement. The two that read tables
-- made by later migrations are plpgsql, which resolves names when called rather than when created.

create or replace function private.caller_role()
returns text
language sql
stable
set search_path = ''
as $$
    select coalesce(auth.jwt() ->> 'role', 'anon')
$$;
comment on function private.caller_role() is 'The role claim of the caller''s JWT (anon when there is none).';

create or replace function private.caller_grants(out grants_all boolean, out capabilities jsonb)
language sql
stable
security definer
set search_path = ''
as $$
    -- A definer: it reads the caller's profile and role, which the caller may not be allowed to list.
    select
        coalesce(r.grants_all, false) or private.caller_role() = 'service_role',
        coalesce(r.capabilities, '{}')
    from (select) as one
    left join public.profiles as p on private.caller_role() = 'authenticated' and p.id = auth.uid()
    left join public.roles as r on r.name = p.role
$$;
comment on function private.caller_grants() is
'The caller''s grants_all and capabilities: the service role grants all; anon and devices hold nothing.';

create or replace function private.has_capability(section text, action text)
returns boolean
language sql
stable
set search_path = ''
as $$
    select g.grants_all or coalesce(g.capabilities -> section -> action = 'true'::jsonb, false)
    from private.caller_grants() as g
$$;
comment on function private.has_capability(text, text) is
'True when the caller''s role grants_all or its capabilities -> section -> action is exactly JSON true.';

create or replace function private.is_admin()
returns boolean
language sql
stable
set search_path = ''
as $$
    select g.grants_all from private.caller_grants() as g
$$;
comment on function private.is_admin() is 'True for the service role and for users whose role grants_all.';

create or replace function private.current_device()
returns uuid
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    found uuid;
begin
    -- A definer: a device's credential is checked against its row whatever the caller may read.
    if private.caller_role() <> 'device' then
        return null;
    end if;
    select d.uuid into found from public.devices as d
    where d.uuid = auth.uid()
        and d.credential_id is not null
        and d.credential_id = private.try_uuid(auth.jwt() ->> 'cred')
        and d.workspace_id = private.try_uuid(auth.jwt() ->> 'workspace_id');
    return found;
end;
$$;
comment on function private.current_device() is
'The calling device''s uuid while its JWT cred equals devices.credential_id; null otherwise (unpaired, forged).';

create or replace function private.my_workspaces()
returns uuid[]
language plpgsql
stable
security definer
set search_path = ''
as $$
begin
    -- A definer: membership decides what a user may read, so it cannot itself be filtered by it.
    if private.caller_role() <> 'authenticated' then
        return '{}';
    end if;
    return coalesce(
        (select array_agg(m.workspace_id) from public.workspace_members as m where m.user_id = auth.uid()), '{}'
    );
end;
$$;
comment on function private.my_workspaces() is 'The workspaces the calling user belongs to.';

revoke execute on function private.caller_role(), private.caller_grants(), private.has_capability(text, text),
private.is_admin(), private.current_device(), private.my_workspaces() from public, anon;
grant execute on function private.caller_role(), private.caller_grants(), private.has_capability(text, text),
private.is_admin(), private.current_device(), private.my_workspaces() to authenticated, device, service_role;
