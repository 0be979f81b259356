-- Purpose: what workers ask before offering anything: has_capability, my_capabilities, whoami (for a user or a
-- device); and the admin RPC that changes a user's role.
-- Defines:
--   function private.capabilities_of_caller()
--   function private.set_user_role(uuid,text)
--   function private.whoami()
--   function public.has_capability(text,text)
--   function public.my_capabilities()
--   function public.set_user_role(uuid,text)
--   function public.whoami()
-- Caveats: the last admin cannot be demoted, so a project always has someone who can fix roles.

create or replace function private.capabilities_of_caller()
returns jsonb
language sql
stable
set search_path = ''
as $$
    select jsonb_object_agg(
        s.section,
        jsonb_build_object('view', private.has_capability(s.section, 'view'), 'edit', private.has_capability(s.section, 'edit'))
    )
    from unnest(array[
        'devices', 'entries', 'services', 'tags', 'global', 'users', 'workspaces', 'breakpoints', 'agents'
    ]) as s (section)
$$;

create or replace function private.whoami()
returns jsonb
language plpgsql
stable
security definer
set search_path = ''
as $$
declare
    kind text := private.caller_role();
    me public.profiles;
    dev public.devices;
begin
    -- A definer: it reports the caller's own rows whatever the table policies would show.
    if kind = 'service_role' then
        return jsonb_build_object('kind', 'service', 'role', null, 'grants_all', true,
            'capabilities', private.capabilities_of_caller());
    elsif kind = 'device' then
        select * into dev from public.devices as d where d.uuid = private.current_device();
        return jsonb_build_object('kind', 'device', 'id', auth.uid(), 'paired', dev.uuid is not null,
            'workspace_id', dev.workspace_id, 'name', dev.name, 'source', dev.source);
    elsif kind = 'authenticated' then
        select * into me from public.profiles as p where p.id = auth.uid();
        return jsonb_build_object(
            'kind', 'user', 'id', auth.uid(), 'email', me.email, 'display_name', me.display_name, 'role', me.role,
            'grants_all', private.is_admin(), 'capabilities', private.capabilities_of_caller(),
            'workspaces', to_jsonb(private.my_workspaces()),
            'devices', coalesce((select jsonb_agg(d.uuid order by d.created_at) from public.devices as d
                                 where d.owner_user_id = auth.uid()), '[]')
        );
    end if;
    return jsonb_build_object('kind', 'anonymous');
end;
$$;

create or replace function private.set_user_role(target uuid, new_role text)
returns public.profiles
language plpgsql
security definer
set search_path = ''
as $$
declare
    result public.profiles;
begin
    -- A definer: profiles.role has no user update grant; require_admin is the gate.
    perform private.require_admin('change a user''s role');
    if not exists (select from public.roles as r where r.name = new_role) then
        raise exception using errcode = '22023', message = format('no role %s', coalesce(new_role, 'null')),
            hint = 'select name from roles';
    end if;
    perform 1 from public.profiles as p where p.id = target for update;
    if exists (select from public.profiles as p inner join public.roles as r on r.name = p.role
               where p.id = target and r.grants_all)
        and not (select r.grants_all from public.roles as r where r.name = new_role)
        and (select count(*) from public.profiles as p inner join public.roles as r on r.name = p.role
             where r.grants_all) <= 1 then
        raise exception using errcode = '42501', message = 'the last admin cannot be demoted',
            hint = 'Make someone else an admin first.';
    end if;
    update public.profiles set role = new_role where id = target returning * into result;
    if result.id is null then
        raise exception using errcode = 'PT404', message = format('no user %s', target);
    end if;
    return result;
end;
$$;

revoke execute on function private.capabilities_of_caller(), private.whoami(), private.set_user_role(uuid, text)
from public, anon;
grant execute on function private.capabilities_of_caller(), private.whoami(), private.set_user_role(uuid, text)
to authenticated, device, service_role;

create function public.has_capability(section text, action text) returns boolean
language sql stable as $$ select private.has_capability(section, action) $$;
create function public.my_capabilities() returns jsonb
language sql stable as $$
    select jsonb_build_object(
        'grants_all', private.is_admin(), 'capabilities', private.capabilities_of_caller(),
        'role', (select p.role from public.profiles as p where p.id = auth.uid())
    )
$$;
create function public.whoami() returns jsonb
language sql stable as $$ select private.whoami() $$;
create function public.set_user_role(user_id uuid, role text) returns public.profiles
language sql as $$ select * from private.set_user_role(user_id, role) $$;

comment on function public.has_capability(text, text) is 'Whether the caller may <action> (view, edit) in <section>.';
comment on function public.my_capabilities() is 'The caller''s role and every section''s view and edit flags.';
comment on function public.whoami() is 'Who the token belongs to: a user (role, capabilities, devices), a device, the service.';
comment on function public.set_user_role(uuid, text) is 'Give a user another role (admin; the last admin stays).';

revoke execute on function public.has_capability(text, text), public.my_capabilities(), public.whoami(),
public.set_user_role(uuid, text) from public, anon;
grant execute on function public.has_capability(text, text), public.my_capabilities(), public.whoami()
to authenticated, device, service_role;
grant execute on function public.set_user_role(uuid, text) to authenticated, service_role;
