-- inspect_requests, count_entries, recent_entries: what they return, to whom, and that credentials never leave.
begin;
select plan(27);
select tests.make_world();
insert into public.entries (
    workspace_id, device_uuid, source, method, host, path, query, status, captured_at,
    request_headers, response_headers, request_body, response_body
)
values
(
    tests.id('w1'), tests.id('d1'), 'proxy', 'POST', 'api.example.com', '/login', 'next=1', 200, now() - interval '2 minutes',
    '[["Authorization", "Bearer abc.def"], ["COOKIE", "sid=1"], ["X-Api-Key", "k-123"], ["X-Auth-Token", "t0k"],
   ["x-client-secret", "s3cr3t"], ["ApiKey", "ak"], ["X-Session-Id", "sess"], ["Proxy-Authorization", "Basic eA=="],
   ["Accept", "application/json"]]',
    '[["Set-Cookie", "sid=2; HttpOnly"], ["set-cookie", "theme=dark"], ["Content-Type", "application/json"], ["X-CSRF-TOKEN", "csrf"]]',
    convert_to('{"user": "a"}', 'UTF8'), '\x00ff10'::bytea
),
(tests.id('w1'), tests.id('d1'), 'proxy', 'GET', 'api.example.com', '/me', null, 200, now() - interval '1 minute', '[]', '[]', null, null),
(tests.id('w1'), tests.id('d3'), 'bmc', 'GET', 'cdn.example.com', '/a.js', null, 304, now() - interval '3 hours', '[]', '[]', null, null),
(tests.id('w2'), tests.id('d2'), 'proxy', 'GET', 'api.example.com', '/other', null, 200, now(), '[]', '[]', null, null);

select tests.authenticate_as('member');
select results_eq(
    $$ select method, url, status from public.inspect_requests('API.example.com') $$,
    $$ values ('GET', 'https://api.example.com/me', 200), ('POST', 'https://api.example.com/login?next=1', 200) $$,
    'inspect_requests returns the newest flows of the exact host first, in any letter case, within the caller''s workspaces'
);
select is(
    (select request_headers from public.inspect_requests('api.example.com', 10) where method = 'POST'),
    '[["Authorization", "<redacted len=14>"], ["COOKIE", "<redacted len=5>"], ["X-Api-Key", "<redacted len=5>"],
      ["X-Auth-Token", "<redacted len=3>"], ["x-client-secret", "<redacted len=6>"], ["ApiKey", "<redacted len=2>"],
      ["X-Session-Id", "<redacted len=4>"], ["Proxy-Authorization", "<redacted len=10>"], ["Accept", "application/json"]]'::jsonb,
    'every sensitive request header is redacted, whatever its letter case; the others are kept'
);
select is(
    (select response_headers from public.inspect_requests('api.example.com', 10) where method = 'POST'),
    '[["Set-Cookie", "<redacted len=15>"], ["set-cookie", "<redacted len=10>"], ["Content-Type", "application/json"],
      ["X-CSRF-TOKEN", "<redacted len=4>"]]'::jsonb,
    'response headers too, every repeat of set-cookie included'
);
select ok(
    (
        select (to_jsonb(r)::text !~ '(abc\.def|sid=1|k-123|t0k|s3cr3t|sess"|sid=2|theme=dark|csrf)')
        from public.inspect_requests('api.example.com', 10) as r where r.method = 'POST'
    ),
    'no secret value appears anywhere in what inspect_requests returns'
);
select results_eq(
    $$ select request_body, request_body_base64, response_body, response_body_base64
       from public.inspect_requests('api.example.com') where method = 'POST' $$,
    $$ values ('{"user": "a"}', null::text, null::text, 'AP8Q') $$,
    'a text body comes back as text, a binary one as base64'
);
select throws_ok(
    $$ select * from public.inspect_requests('localhost') $$, '22023', 'localhost is not a full hostname',
    'a name without a dot is refused'
);
select is(
    (select count(*)::integer from public.inspect_requests('api.example.com', 1)), 1, 'limit caps the number of flows'
);
select throws_ok(
    $$ select * from public.inspect_requests('api.example.com', 1000) $$, '22023', 'limit is between 1 and 100',
    'a limit over 100 is refused'
);
select throws_ok(
    $$ select * from public.inspect_requests('api.example.com', 0) $$, '22023', 'limit is between 1 and 100',
    'a limit under 1 is refused'
);
select is_empty(
    $$ select * from public.inspect_requests('api.example.com'' or ''1''=''1') $$,
    'a host with SQL in it is just a host that matches nothing'
);

-- count_entries and recent_entries
select is(public.count_entries(), 2::bigint, 'count_entries counts the last hour of the caller''s workspaces by default');
select is(public.count_entries(now() - interval '1 day'), 3::bigint, 'since widens the window');
select is(public.count_entries(now() - interval '1 day', tests.id('d3')), 1::bigint, 'device narrows it');
select is(public.count_entries(now() - interval '1 day', null, 'API.EXAMPLE.COM'), 2::bigint, 'host narrows it, in any letter case');
select results_eq(
    $$ select host, path from public.recent_entries(2) $$,
    $$ values ('api.example.com', '/me'), ('api.example.com', '/login') $$,
    'recent_entries gives the newest flows first'
);
select is(
    (select count(*)::integer from public.recent_entries(10, tests.id('d3'))), 1, 'recent_entries narrows by device'
);
select ok(
    not exists (
        select from jsonb_object_keys(to_jsonb((select r from public.recent_entries(1) as r))) as k
        where k in ('request_headers', 'response_headers', 'request_body', 'response_body')
    ),
    'recent_entries returns metadata only'
);
select is((select count(*)::integer from public.recent_entries(100000)), 3, 'an oversized limit is capped, not an error');
reset role;

-- who may call them
select tests.attempt(who, stmt, expected, format('%s: %s', who, label))
from (
    values
    ('anon', $$ select * from public.inspect_requests('api.example.com') $$, 'error=42501', 'anon cannot inspect'),
    ('device:d1', $$ select * from public.inspect_requests('api.example.com') $$, 'error=42501', 'a device cannot inspect'),
    ('nocaps', $$ select * from public.inspect_requests('api.example.com') $$, 'rows=0', 'without entries:view nothing comes back'),
    ('outsider', $$ select * from public.inspect_requests('api.example.com') $$, 'rows=1', 'an outsider sees only their workspace'),
    ('admin', $$ select * from public.inspect_requests('api.example.com') $$, 'rows=3', 'an admin sees every workspace'),
    ('anon', $$ select public.count_entries() $$, 'error=42501', 'anon cannot count'),
    ('nocaps', $$ select 1 where public.count_entries(now() - interval '1 day') = 0 $$, 'rows=1', 'without entries:view the count is 0'),
    ('device:d1', $$ select * from public.recent_entries() $$, 'error=42501', 'a device cannot list traffic'),
    ('outsider', $$ select * from public.recent_entries() $$, 'rows=1', 'recent_entries follows row-level security')
) as v (who, stmt, expected, label);

select * from finish();
rollback;
