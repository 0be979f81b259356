-- Purpose: who may read roles and profiles, and edit their own profile.
-- Affects: policies on public.roles and public.profiles.
-- Caveats: a user's role changes only through the admin RPC set_user_role; the column grants keep a user from
-- editing anything of their profile but display_name and busybro_prefs.

create policy "roles: select signed-in users" on public.roles
for select to authenticated
using (true);

create policy "profiles: select own, or all with users:view" on public.profiles
for select to authenticated
using (id = (select auth.uid()) or (select private.has_capability('users', 'view')));

create policy "profiles: update own" on public.profiles
for update to authenticated
using (id = (select auth.uid()))
with check (id = (select auth.uid()));
