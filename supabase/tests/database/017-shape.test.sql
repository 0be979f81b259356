-- Shape: the exact policies of every table, and the definer, volatility and privileges of every helper.
begin;
select plan(55);

select policies_are('public', 'roles', array['roles: select signed-in users'], 'roles has exactly its policies');
select policies_are(
    'public', 'profiles', array['profiles: select own, or all with users:view', 'profiles: update own'],
    'profiles has exactly its policies'
);
select policies_are('public', 'workspaces', array['workspaces: select members and admins'], 'workspaces has exactly its policies');
select policies_are(
    'public', 'workspace_members', array['workspace_members: select fellow members and admins'],
    'workspace_members has exactly its policies'
);
select policies_are(
    'public', 'workspace_tabs',
    array[
        'workspace_tabs: select shared and own tabs of my workspaces', 'workspace_tabs: insert own tabs in my workspaces',
        'workspace_tabs: update own tabs', 'workspace_tabs: delete own tabs'
    ],
    'workspace_tabs has exactly its policies'
);
select policies_are(
    'public', 'devices', array['devices: select owned, or viewable in my workspaces', 'devices: select itself'],
    'devices has exactly its policies'
);
select policies_are(
    'public', 'device_status',
    array[
        'device_status: select where the device is visible', 'device_status: select its own',
        'device_status: insert its own', 'device_status: update its own'
    ],
    'device_status has exactly its policies'
);
select policies_are(
    'public', 'settings_global', array['settings_global: select signed-in users', 'settings_global: select paired devices'],
    'settings_global has exactly its policies'
);
select policies_are(
    'public', 'settings_device', array['settings_device: select where the device is visible', 'settings_device: select its own'],
    'settings_device has exactly its policies'
);
select policies_are('public', 'tags', array['tags: select with tags:view'], 'tags has exactly its policies');
select policies_are(
    'public', 'service_groups', array['service_groups: select with services:view'], 'service_groups has exactly its policies'
);
select policies_are(
    'public', 'service_group_agents', array['service_group_agents: select with services:view'],
    'service_group_agents has exactly its policies'
);
select policies_are(
    'public', 'busybro_agents',
    array[
        'busybro_agents: select with agents:view', 'busybro_agents: insert with agents:edit',
        'busybro_agents: update with agents:edit', 'busybro_agents: delete with agents:edit'
    ],
    'busybro_agents has exactly its policies'
);
select policies_are('public', 'telegram_links', array['telegram_links: select own'], 'telegram_links has exactly its policies');
select policies_are('public', 'busybro_threads', '{}'::name[], 'busybro_threads has no policy: service role only');
select policies_are(
    'realtime', 'messages',
    array[
        'messages: select topics the caller may receive', 'messages: insert broadcasts the caller may send',
        'messages: insert presence where the caller may receive'
    ],
    'realtime.messages has exactly the channel policies'
);

-- every definer in private: pinned (the lint checks), and closed to anon
select is_definer('private', f, args, format('private.%s is a security definer', f))
from (
    values
    ('caller_grants', '{}'::name[]), ('current_device', '{}'), ('my_workspaces', '{}'),
    ('can_receive_topic', array['text']), ('can_send_topic', array['text', 'text']), ('device_for_command', array['uuid', 'text']),
    ('handle_auth_user', '{}'), ('broadcast_change', '{}'), ('whoami', '{}'), ('set_user_role', array['uuid', 'text'])
) as v (f, args);

select volatility_is('private', f, args, 'stable', format('private.%s is stable', f))
from (
    values
    ('has_capability', array['text', 'text']::name[]), ('is_admin', '{}'), ('current_device', '{}'), ('my_workspaces', '{}'),
    ('can_receive_topic', array['text']), ('can_send_topic', array['text', 'text']), ('caller_role', '{}'), ('caller_grants', '{}'),
    ('capabilities_of_caller', '{}'), ('whoami', '{}')
) as v (f, args);
select volatility_is('public', 'effective_settings', array['uuid'], 'stable', 'effective_settings is stable');
select volatility_is('private', 'try_uuid', array['text'], 'immutable', 'try_uuid is immutable');

select function_privs_are('private', f, args, 'anon', '{}'::text[], format('anon cannot execute private.%s', f))
from (
    values
    ('has_capability', array['text', 'text']::name[]), ('is_admin', '{}'), ('current_device', '{}'),
    ('my_workspaces', '{}'), ('can_receive_topic', array['text']), ('rename_device', array['uuid', 'text']),
    ('unpair_device', array['uuid']), ('set_user_role', array['uuid', 'text'])
) as v (f, args);

select function_privs_are('public', f, args, 'anon', '{}'::text[], format('anon cannot execute public.%s', f))
from (
    values
    ('rename_device', array['uuid', 'text']::name[]), ('unpair_device', array['uuid']), ('whoami', '{}'),
    ('create_workspace', array['text', 'text', 'integer']), ('set_service_group_agents', array['uuid', 'uuid[]'])
) as v (f, args);

select is(
    (select relreplident from pg_catalog.pg_class where oid = 'public.devices'::regclass), 'f',
    'devices has REPLICA IDENTITY FULL, so renames carry the old name'
);
select is(
    array(
        select c.relname::text from pg_catalog.pg_publication_tables as t
        inner join pg_catalog.pg_class as c on c.relname = t.tablename
        where t.pubname = 'supabase_realtime' and t.schemaname = 'public' order by 1
    ),
    array[
        'breakpoint_events', 'device_status', 'devices', 'entries', 'service_groups', 'settings_device', 'settings_global',
        'tags', 'workspace_tabs'
    ],
    'the supabase_realtime publication carries the identity, device, catalog and traffic tables'
);

-- the capability check runs once per statement (an InitPlan), not once per row
select tests.make_world();
select tests.authenticate_as('member');
select ok(
    tests.explain('select * from public.devices') ~ 'InitPlan',
    'a member''s device list evaluates the capability helpers in InitPlans'
);
select ok(
    tests.explain('select * from public.devices') !~ 'SubPlan',
    'and no helper runs as a per-row SubPlan'
);
reset role;

select * from finish();
rollback;
