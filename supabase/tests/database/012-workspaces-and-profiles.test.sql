-- Workspaces, members, tabs, roles and profiles: who may read and change them.
begin;
select plan(73);
select tests.make_world();

-- reading
select tests.attempt(who, stmt, expected, format('%s: %s', who, label))
from (
    values
    ('anon', 'select 1 from public.workspaces', 'error=42501', 'anon reads no workspace'),
    ('member', 'select 1 from public.workspaces', 'rows=1', 'a member reads only their workspace'),
    ('outsider', $$ select 1 from public.workspaces where id = {w1} $$, 'rows=0', 'an outsider does not see w1'),
    ('admin', 'select 1 from public.workspaces', 'rows=2', 'an admin reads every workspace'),
    ('device:d1', 'select 1 from public.workspaces', 'error=42501', 'a device reads no workspace'),
    ('member', $$ select 1 from public.workspace_members where workspace_id = {w1} $$, 'rows=7', 'a member sees fellow members'),
    ('member', $$ select 1 from public.workspace_members where workspace_id = {w2} $$, 'rows=0', 'but not another workspace''s'),
    ('outsider', 'select 1 from public.workspace_members', 'rows=1', 'an outsider sees only their own membership'),
    ('owner', 'select 1 from public.workspace_tabs', 'rows=2', 'a user sees the shared tab and their own'),
    ('member', $$ select 1 from public.workspace_tabs where id = {owner_tab} $$, 'rows=0', 'not another user''s tab'),
    ('outsider', $$ select 1 from public.workspace_tabs where id = {shared} $$, 'rows=0', 'nor another workspace''s shared tab'),
    ('admin', 'select 1 from public.workspace_tabs', 'rows=4', 'an admin sees every tab'),
    ('anon', 'select 1 from public.roles', 'error=42501', 'anon reads no roles'),
    ('viewer', 'select 1 from public.roles', 'rows=6', 'a signed-in user reads the roles'),
    ('device:d1', 'select 1 from public.roles', 'error=42501', 'a device reads no roles'),
    ('viewer', 'select 1 from public.profiles', 'rows=1', 'without users:view a user reads only their own profile'),
    ('member', 'select 1 from public.profiles', 'rows=8', 'with users:view every profile'),
    ('anon', 'select 1 from public.profiles', 'error=42501', 'anon reads no profile')
) as v (who, stmt, expected, label);

-- direct writes
select tests.attempt(who, stmt, expected, format('%s: %s', who, label), watched::regclass)
from (
    values
    (
        'admin', $$ insert into public.workspaces (slug, name) values ('x', 'X') returning 1 $$, 'error=42501',
        'even an admin creates workspaces only through the RPC', 'public.workspaces'
    ),
    ('member', $$ update public.workspaces set name = 'x' returning 1 $$, 'error=42501', 'a member cannot rename a workspace', 'public.workspaces'),
    ('member', $$ delete from public.workspaces returning 1 $$, 'error=42501', 'a member cannot delete a workspace', 'public.workspaces'),
    (
        'member', $$ insert into public.workspace_members values ({w2}, {member}) returning 1 $$, 'error=42501',
        'a member cannot join another workspace', 'public.workspace_members'
    ),
    (
        'owner', $$ insert into public.workspace_tabs (workspace_id, user_id, name) values ({w1}, {owner}, 'mine') returning 1 $$,
        'rows=1', 'a user adds their own tab', 'public.workspace_tabs'
    ),
    (
        'owner', $$ insert into public.workspace_tabs (workspace_id, user_id, name) values ({w1}, {member}, 'yours') returning 1 $$,
        'error=42501', 'but not one for someone else', 'public.workspace_tabs'
    ),
    (
        'owner', $$ insert into public.workspace_tabs (workspace_id, user_id, name) values ({w2}, {owner}, 'there') returning 1 $$,
        'error=42501', 'nor in a workspace they do not belong to', 'public.workspace_tabs'
    ),
    (
        'owner', $$ insert into public.workspace_tabs (workspace_id, user_id, name) values ({w1}, null, 'for all') returning 1 $$,
        'error=42501', 'nor a shared tab', 'public.workspace_tabs'
    ),
    (
        'owner', $$ update public.workspace_tabs set name = 'renamed' where id = {owner_tab} returning 1 $$,
        'rows=1', 'a user renames their tab', 'public.workspace_tabs'
    ),
    (
        'owner', $$ update public.workspace_tabs set name = 'renamed' where id = {member_tab} returning 1 $$,
        'rows=0', 'not another user''s', 'public.workspace_tabs'
    ),
    (
        'owner', $$ update public.workspace_tabs set name = 'renamed' where id = {shared} returning 1 $$,
        'rows=0', 'nor the shared tab', 'public.workspace_tabs'
    ),
    (
        'owner', $$ update public.workspace_tabs set user_id = {member} where id = {owner_tab} returning 1 $$,
        'error=42501', 'nor give their tab away', 'public.workspace_tabs'
    ),
    (
        'member', $$ delete from public.workspace_tabs where id = {owner_tab} returning 1 $$,
        'rows=0', 'a user cannot delete another''s tab', 'public.workspace_tabs'
    ),
    (
        'member', $$ delete from public.workspace_tabs where id = {member_tab} returning 1 $$,
        'rows=1', 'a user deletes their own tab', 'public.workspace_tabs'
    ),
    (
        'viewer', $$ update public.profiles set display_name = 'Vee' where id = {viewer} returning 1 $$,
        'rows=1', 'a user edits their display name', 'public.profiles'
    ),
    (
        'viewer', $$ update public.profiles set role = 'admin' where id = {viewer} returning 1 $$,
        'error=42501', 'but cannot make themselves admin', 'public.profiles'
    ),
    (
        'member', $$ update public.profiles set display_name = 'x' where id = {owner} returning 1 $$,
        'rows=0', 'nor edit someone else''s profile', 'public.profiles'
    ),
    (
        'admin', $$ update public.roles set grants_all = true where name = 'viewer' returning 1 $$,
        'error=42501', 'roles change only by migration', 'public.roles'
    ),
    (
        'anon', $$ insert into public.profiles (id) values (gen_random_uuid()) returning 1 $$,
        'error=42501', 'anon cannot create a profile', 'public.profiles'
    )
) as v (who, stmt, expected, label, watched);

-- admin RPCs: (who, call, expected)
select tests.attempt(who, stmt, expected, format('%s: %s', who, label))
from (
    values
    ('editor', $$ select public.create_workspace('gamma', 'Gamma') $$, 'error=42501', 'workspaces:edit is not enough: admins only'),
    ('member', $$ select public.update_workspace({w1}, 'X') $$, 'error=42501', 'a member cannot update a workspace'),
    ('member', $$ select public.delete_workspace({w1}) $$, 'error=42501', 'a member cannot delete a workspace'),
    ('member', $$ select public.add_workspace_member({w2}, {member}) $$, 'error=42501', 'a member cannot add members'),
    ('member', $$ select public.remove_workspace_member({w1}, {owner}) $$, 'error=42501', 'a member cannot remove members'),
    ('member', $$ select public.create_workspace_tab({w1}, 'shared two') $$, 'error=42501', 'a member cannot create shared tabs'),
    ('member', $$ select public.update_workspace_tab({owner_tab}, 'x') $$, 'error=42501', 'a member cannot change others'' tabs by RPC'),
    ('member', $$ select public.delete_workspace_tab({shared}) $$, 'error=42501', 'a member cannot delete the shared tab'),
    ('member', $$ select public.set_user_role({member}, 'admin') $$, 'error=42501', 'a member cannot promote themselves'),
    ('anon', $$ select public.create_workspace('gamma', 'Gamma') $$, 'error=42501', 'anon cannot call admin RPCs'),
    ('device:d1', $$ select public.create_workspace('gamma', 'Gamma') $$, 'error=42501', 'a device cannot call admin RPCs'),
    ('admin', $$ select public.create_workspace('gamma', 'Gamma', 30) $$, 'rows=1', 'an admin creates a workspace'),
    ('admin', $$ select public.create_workspace('gamma', 'Again') $$, 'error=23505', 'a slug is unique'),
    ('admin', $$ select public.create_workspace('Not A Slug!', 'Bad') $$, 'error=23514', 'a slug is lowercase letters, digits and -'),
    ('admin', $$ select public.update_workspace({w2}, retention_days => 14) $$, 'rows=1', 'an admin changes retention'),
    ('admin', $$ select public.update_workspace(gen_random_uuid(), 'x') $$, 'error=PT404', 'an unknown workspace is not found'),
    ('admin', $$ select public.add_workspace_member({w2}, {viewer}) $$, 'rows=1', 'an admin adds a member'),
    ('admin', $$ select public.add_workspace_member({w2}, {viewer}) $$, 'rows=1', 'adding twice is harmless'),
    ('admin', $$ select public.remove_workspace_member({w1}, {nocaps}) $$, 'rows=1', 'an admin removes a member'),
    ('admin', $$ select public.remove_workspace_member({w1}, {nocaps}) $$, 'error=PT404', 'removing twice is not found'),
    (
        'admin', $$ select public.create_workspace_tab({w1}, 'team view', '{"host": "api.example.com"}') $$, 'rows=1',
        'an admin creates a shared tab'
    ),
    ('admin', $$ select public.update_workspace_tab({owner_tab}, "position" => 3) $$, 'rows=1', 'an admin moves anyone''s tab'),
    ('admin', $$ select public.delete_workspace_tab({outsider_tab}) $$, 'rows=1', 'an admin deletes anyone''s tab'),
    ('admin', $$ select public.set_user_role({viewer}, 'member') $$, 'rows=1', 'an admin changes a role'),
    ('admin', $$ select public.set_user_role({viewer}, 'emperor') $$, 'error=22023', 'an unknown role is refused'),
    ('admin', $$ select public.set_user_role({admin}, 'member') $$, 'error=42501', 'the last admin cannot be demoted'),
    ('service_role', $$ select public.set_user_role({owner}, 'admin') $$, 'rows=1', 'the service role promotes a user'),
    ('admin', $$ select public.set_user_role({admin}, 'member') $$, 'rows=1', 'with a second admin the first may step down')
) as v (who, stmt, expected, label);

select is((select retention_days from public.workspaces where id = tests.id('w2')), 14, 'the retention change landed');
select is((select role from public.profiles where id = tests.id('viewer')), 'member', 'the role change landed');
select is((select display_name from public.profiles where id = tests.id('viewer')), 'Vee', 'the display name landed');
select is(
    (select count(*)::integer from public.workspace_tabs where user_id is null and workspace_id = tests.id('w1')), 2,
    'w1 has two shared tabs now'
);

-- the profile trigger
select tests.create_user('newcomer', 'new@example.com');
select results_eq(
    $$ select email, role, display_name from public.profiles where id = tests.get_user_id('newcomer') $$,
    $$ values ('new@example.com', 'viewer', 'new') $$,
    'a new auth user gets a viewer profile named after their email'
);
update auth.users set email = 'renamed@example.com' where id = tests.get_user_id('newcomer');
select is(
    (select email from public.profiles where id = tests.get_user_id('newcomer')), 'renamed@example.com',
    'an email change follows into the profile'
);
delete from auth.users where id = tests.get_user_id('newcomer');
select is_empty(
    $$ select 1 from public.profiles where email = 'renamed@example.com' $$, 'deleting the user deletes the profile'
);
select ok(
    (select count(*) = 0 from public.workspaces where slug = 'x'), 'no refused insert left a workspace behind'
);

select * from finish();
rollback;
