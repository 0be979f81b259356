-- telegram_links and busybro_threads: the bots' tables; users see only their own link, threads are service-only.
begin;
select plan(14);
select tests.make_world();

select tests.attempt(who, stmt, expected, format('%s: %s', who, label), watched::regclass)
from (
    values
    ('anon', 'select 1 from public.telegram_links', 'error=42501', 'anon reads no link', null),
    ('owner', 'select 1 from public.telegram_links', 'rows=1', 'a user reads only their own link', null),
    ('admin', 'select 1 from public.telegram_links', 'rows=0', 'even an admin reads no one else''s link', null),
    ('device:d1', 'select 1 from public.telegram_links', 'error=42501', 'a device reads no link', null),
    (
        'owner', $$ insert into public.telegram_links values (2002, {owner}) returning 1 $$, 'error=42501',
        'a user cannot link an account directly (the bot does)', 'public.telegram_links'
    ),
    ('owner', $$ delete from public.telegram_links returning 1 $$, 'error=42501', 'nor remove a link', 'public.telegram_links'),
    ('service_role', 'select 1 from public.telegram_links', 'rows=2', 'the service role reads every link', null),
    (
        'service_role', $$ insert into public.telegram_links values (2002, {owner}) returning 1 $$, 'rows=1',
        'the service role links accounts', null
    ),
    ('anon', 'select 1 from public.busybro_threads', 'error=42501', 'anon reads no thread', null),
    ('owner', 'select 1 from public.busybro_threads', 'error=42501', 'a user reads no thread', null),
    (
        'admin', $$ update public.busybro_threads set messages = '[]' returning 1 $$, 'error=42501', 'even an admin cannot touch threads',
        'public.busybro_threads'
    ),
    ('device:d1', 'select 1 from public.busybro_threads', 'error=42501', 'a device reads no thread', null),
    (
        'service_role', $$ update public.busybro_threads set messages = messages || '[{"role": "assistant"}]' returning 1 $$,
        'rows=1', 'the service role keeps the threads', null
    )
) as v (who, stmt, expected, label, watched);
select is(
    (select jsonb_array_length(messages) from public.busybro_threads where chat_id = 1001), 2, 'the thread grew by one message'
);

select * from finish();
rollback;
