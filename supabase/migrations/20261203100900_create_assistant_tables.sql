-- Purpose: what the Telegram bots keep: which Telegram user is which Busymate user, and chat threads.
-- Defines:
--   table public.busybro_threads
--   table public.telegram_links
--   policy "telegram_links: select own" on public.telegram_links
-- Caveats: the bots run with the service role (the one documented exception) and re-check ownership
-- themselves. A user may read their own link; threads are service-role only (RLS on, no policy).

create table public.telegram_links (
    telegram_user_id bigint primary key,
    user_id uuid not null references public.profiles (id) on delete cascade,
    created_at timestamptz not null default now()
);
comment on table public.telegram_links is 'A Telegram account linked to a Busymate user.';
create index telegram_links_user_id_idx on public.telegram_links (user_id);

create table public.busybro_threads (
    chat_id bigint primary key,
    messages jsonb not null default '[]' check (jsonb_typeof(messages) = 'array'),
    updated_at timestamptz not null default now()
);
comment on table public.busybro_threads is 'BusyBro conversation history per Telegram chat; service role only.';

revoke all on public.telegram_links, public.busybro_threads from anon, authenticated;
grant select on public.telegram_links to authenticated;

alter table public.telegram_links enable row level security;
alter table public.busybro_threads enable row level security;

create policy "telegram_links: select own" on public.telegram_links
for select to authenticated using (user_id = (select auth.uid()));
