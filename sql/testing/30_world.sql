-- Testing: one small world every product test can start from, with memorable names.
-- Affects: tests.make_world(); rows it makes live only in the calling file's transaction.
-- Caveats: names: users admin, member, owner, nocaps, editor, viewer, outsider, stringy; workspaces w1, w2;
-- devices d1 (owner's, w1, proxy), d2 (outsider's, w2, proxy), d3 (member's, w1, bmc), d_unpaired (owner's, w1,
-- no credential); tag1, group1, agent1-3, tabs shared, owner_tab, member_tab, outsider_tab.

create or replace function tests.make_world()
returns void
language plpgsql
as $$
declare
    who record;
    n text;
    uid uuid;
begin
    foreach n in array array[
        'w1', 'w2', 'd1', 'd2', 'd3', 'd_unpaired', 'tag1', 'group1', 'agent1', 'agent2', 'agent3',
        'shared', 'owner_tab', 'member_tab', 'outsider_tab'
    ] loop
        perform tests.remember(n, gen_random_uuid());
    end loop;
    insert into public.roles (name, description, capabilities) values
    ('nocaps', 'no capability at all', '{}'),
    ('editor', 'every section, view and edit, without grants_all',
     '{"devices": {"view": true, "edit": true}, "entries": {"view": true, "edit": true},
       "services": {"view": true, "edit": true}, "tags": {"view": true, "edit": true},
       "global": {"view": true, "edit": true}, "users": {"view": true, "edit": true},
       "workspaces": {"view": true, "edit": true}, "breakpoints": {"view": true, "edit": true},
       "agents": {"view": true, "edit": true}}'),
    ('stringy', 'flags that are not exactly JSON true', '{"devices": {"view": "true", "edit": 1}}');
    insert into public.workspaces (id, slug, name) values
    (tests.id('w1'), 'alpha', 'Alpha'), (tests.id('w2'), 'beta', 'Beta');
    for who in select * from (values
        ('admin', 'admin', 'w1'), ('member', 'member', 'w1'), ('owner', 'member', 'w1'), ('nocaps', 'nocaps', 'w1'),
        ('editor', 'editor', 'w1'), ('viewer', 'viewer', 'w1'), ('outsider', 'member', 'w2'),
        ('stringy', 'stringy', 'w1')
    ) as v (name, role, workspace) loop
        uid := tests.remember(who.name, tests.create_user(who.name));
        update public.profiles set role = who.role where id = uid;
        insert into public.workspace_members (workspace_id, user_id) values (tests.id(who.workspace), uid);
    end loop;
    insert into public.devices (uuid, workspace_id, owner_user_id, name, source, proxy_port) values
    (tests.id('d1'), tests.id('w1'), tests.id('owner'), 'owner-proxy', 'proxy', 9101),
    (tests.id('d2'), tests.id('w2'), tests.id('outsider'), 'outsider-proxy', 'proxy', 9102),
    (tests.id('d3'), tests.id('w1'), tests.id('member'), 'member-chrome', 'bmc', null),
    (tests.id('d_unpaired'), tests.id('w1'), tests.id('owner'), 'owner-old-phone', 'ios', null);
    insert into private.device_credentials (device_uuid)
    select tests.id(d) from unnest(array['d1', 'd2', 'd3']) as d;
    insert into public.device_status (device_uuid, online, vpn_state)
    select tests.id(d), true, 'off' from unnest(array['d1', 'd2', 'd3']) as d;
    insert into public.settings_device (device_uuid, overrides) values
    (tests.id('d1'), '{"capture_bodies": false}'), (tests.id('d2'), '{"capture_bodies": true}');
    insert into public.tags (id, name, match_patterns) values (tests.id('tag1'), 'api', '{api.example.com}');
    insert into public.service_groups (id, name, domains) values (tests.id('group1'), 'Example', '{example.com}');
    insert into public.busybro_agents (id, name) values
    (tests.id('agent1'), 'agent1'), (tests.id('agent2'), 'agent2'), (tests.id('agent3'), 'agent3');
    insert into public.service_group_agents (service_group_id, agent_id, is_primary, position)
    values (tests.id('group1'), tests.id('agent1'), true, 0);
    insert into public.workspace_tabs (id, workspace_id, user_id, name) values
    (tests.id('shared'), tests.id('w1'), null, 'shared'),
    (tests.id('owner_tab'), tests.id('w1'), tests.id('owner'), 'owner tab'),
    (tests.id('member_tab'), tests.id('w1'), tests.id('member'), 'member tab'),
    (tests.id('outsider_tab'), tests.id('w2'), tests.id('outsider'), 'outsider tab');
    insert into public.telegram_links (telegram_user_id, user_id) values
    (1001, tests.id('owner')), (1002, tests.id('outsider'));
    insert into public.busybro_threads (chat_id, messages) values (1001, '[{"role": "user", "content": "hi"}]');
end;
$$;
grant execute on function tests.make_world() to anon, authenticated, service_role;
