-- Purpose: tell Realtime at once when what a user may read shrinks, so it re-checks their private channels
-- (issue 15, item 9) instead of letting them receive until their token expires.
-- Affects: private.announce_access_change(); triggers on public.workspace_members, public.profiles and
-- public.roles publishing `changed` on access:<user id> (access:all when a role's grants change).
-- Caveats: the topics are for the server only: no policy lets anyone receive or send on them, and the API
-- server acts on the committed row in commit order, before any later broadcast reaches the channel. A new
-- membership or role that only adds rights is not announced (nothing to close).

create or replace function private.announce_access_change()
returns trigger
language plpgsql
security definer
set search_path = ''
as $$
begin
    -- A definer: the change may be made by the auth server or a cascade, who cannot write realtime.messages.
    if tg_table_name = 'roles' then
        perform realtime.send('{}'::jsonb, 'changed', 'access:all', true);
    elsif tg_table_name = 'profiles' then
        perform realtime.send(jsonb_build_object('user_id', new.id), 'changed', 'access:' || new.id::text, true);
    else
        perform realtime.send(jsonb_build_object('user_id', old.user_id), 'changed', 'access:' || old.user_id::text, true);
    end if;
    return null;
end;
$$;
comment on function private.announce_access_change() is
'Trigger: publish `changed` on access:<user id> (access:all for a role) so Realtime re-checks private channels.';
revoke execute on function private.announce_access_change() from public, anon;

create trigger workspace_members_announce_removal
after delete on public.workspace_members
for each row execute function private.announce_access_change();

create trigger workspace_members_announce_move
after update of workspace_id, user_id on public.workspace_members
for each row
when (old.workspace_id is distinct from new.workspace_id or old.user_id is distinct from new.user_id)
execute function private.announce_access_change();

create trigger profiles_announce_role_change
after update of role on public.profiles
for each row
when (old.role is distinct from new.role)
execute function private.announce_access_change();

create trigger roles_announce_grant_change
after update of grants_all, capabilities or delete on public.roles
for each statement execute function private.announce_access_change();
