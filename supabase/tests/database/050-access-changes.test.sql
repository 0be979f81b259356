-- Access changes reach Realtime: a removal, a role change or a role's new grants publish `changed` on
-- access:<user> (access:all for a role), privately, and nobody may receive or send on those topics.
begin;
select plan(17);
select tests.make_world();
delete from realtime.messages;

select is_definer('private', 'announce_access_change', 'the announcing trigger function is a definer');
select function_privs_are(
    'private', 'announce_access_change', array[]::text[], 'anon', array[]::text[],
    'anon may not run the announcing trigger function'
);

-- as admin: remove a member
select tests.authenticate_as('admin');
select public.remove_workspace_member(tests.id('w1'), tests.id('member'));
reset role;
select results_eq(
    $$ select topic, event, payload ->> 'user_id', private from realtime.messages $$,
    $$ values ('access:' || tests.id('member')::text, 'changed', tests.id('member')::text, true) $$,
    'removing a member publishes one private `changed` on access:<member>'
);

-- as admin: add them back
delete from realtime.messages;
select tests.authenticate_as('admin');
select public.add_workspace_member(tests.id('w1'), tests.id('member'));
reset role;
select is_empty($$ select 1 from realtime.messages $$, 'adding a member (or adding them again) publishes nothing');
select tests.authenticate_as('admin');
select public.add_workspace_member(tests.id('w1'), tests.id('member'));
reset role;
select is_empty($$ select 1 from realtime.messages $$, 'adding an existing member again publishes nothing');

-- as admin: change a role, then set the same one again
select tests.authenticate_as('admin');
select public.set_user_role(tests.id('viewer'), 'nocaps');
reset role;
select results_eq(
    $$ select topic, event from realtime.messages $$,
    $$ values ('access:' || tests.id('viewer')::text, 'changed') $$,
    'a demotion with set_user_role publishes on access:<user>'
);
delete from realtime.messages;
select tests.authenticate_as('admin');
select public.set_user_role(tests.id('viewer'), 'nocaps');
reset role;
select is_empty($$ select 1 from realtime.messages $$, 'setting the role a user already has publishes nothing');

-- a role's grants
update public.roles set capabilities = '{}' where name = 'editor';
select results_eq(
    $$ select topic, event from realtime.messages $$,
    $$ values ('access:all', 'changed') $$,
    'changing what a role grants publishes once on access:all'
);
delete from realtime.messages;
update public.roles set description = 'renamed' where name = 'editor';
select is_empty($$ select 1 from realtime.messages $$, 'a new description alone publishes nothing');

-- a workspace deleted: its members lose it
select tests.authenticate_as('admin');
select public.delete_workspace(tests.id('w2'));
reset role;
select results_eq(
    $$ select topic from realtime.messages where topic like 'access:%' $$,
    $$ values ('access:' || tests.id('outsider')::text) $$,
    'deleting a workspace publishes for each member it had'
);
select is(
    (select count(*)::integer from realtime.messages where private is not true), 0, 'every announcement is private'
);

-- a refused removal publishes nothing
delete from realtime.messages;
select tests.attempt(
    'member', $$ select public.remove_workspace_member({w1}, {owner}) $$, 'error=42501',
    'a member may not remove another member', 'public.workspace_members'
);
select is_empty($$ select 1 from realtime.messages $$, 'and the refused removal published nothing');

-- nobody receives or sends on access:* (the server reads them from the slot)
select is(tests.can_receive('member', 'access:{member}'), false, 'a user may not receive on their own access topic');
select is(tests.can_receive('admin', 'access:all'), false, 'nor may an admin receive on access:all');
select is(tests.can_send('admin', 'access:{member}', 'changed'), false, 'an admin may not send on access:<user>');
select is(tests.can_send('member', 'access:all', 'changed'), false, 'nor may a member send on access:all');

select * from finish();
rollback;
