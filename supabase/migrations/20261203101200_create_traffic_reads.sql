-- Purpose: the reads BusyBro and MCP use to reverse-engineer a service: inspect_requests, count_entries,
-- recent_entries; with sensitive header values redacted in the database, so no surface can leak them.
-- Defines:
--   function private.body_text(bytea)
--   function private.is_sensitive_header(text)
--   function private.redact_headers(jsonb)
--   function public.count_entries(timestamp with time zone,uuid,text)
--   function public.inspect_requests(text,integer)
--   function public.recent_entries(integer,uuid,text)
-- Caveats: invokers, so row-level security decides what each caller sees. inspect_requests takes one exact
-- hostname (a name without a dot is refused) and returns at most 100 flows.

create or replace function private.is_sensitive_header(name text)
returns boolean
language sql
immutable
set search_path = ''
as $$
    select lower(name) in ('authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key')
        or lower(name) ~ '(token|secret|apikey|api-key|api_key|session|password)'
$$;
comment on function private.is_sensitive_header(text) is
'Whether a header carries a credential: authorization, cookies, api keys, and names with token, secret or session.';

create or replace function private.redact_headers(headers jsonb)
returns jsonb
language sql
immutable
set search_path = ''
as $$
    select coalesce(jsonb_agg(
        case when jsonb_typeof(h.pair) = 'array' and private.is_sensitive_header(h.pair ->> 0)
            then jsonb_build_array(h.pair ->> 0, format('<redacted len=%s>', length(coalesce(h.pair ->> 1, ''))))
            else h.pair
        end order by h.ord
    ), '[]')
    from jsonb_array_elements(coalesce(headers, '[]')) with ordinality as h (pair, ord)
$$;
comment on function private.redact_headers(jsonb) is 'Headers with every sensitive value replaced by <redacted len=N>.';

create or replace function private.body_text(body bytea)
returns text
language plpgsql
immutable
set search_path = ''
as $$
begin
    return convert_from(body, 'UTF8');
exception when character_not_in_repertoire or untranslatable_character then
    return null;
end;
$$;
comment on function private.body_text(bytea) is 'The body as UTF-8 text, or null when it is not text.';
grant execute on function private.is_sensitive_header(text), private.redact_headers(jsonb), private.body_text(bytea)
to authenticated, service_role;

create or replace function public.inspect_requests(host text, "limit" integer default 20)
returns table (
    id uuid, captured_at timestamptz, device_uuid uuid, method text, url text, status integer, duration_ms real,
    request_headers jsonb, request_body text, request_body_base64 text, request_body_size bigint,
    request_body_truncated boolean, response_headers jsonb, response_body text, response_body_base64 text,
    response_body_size bigint, response_body_truncated boolean
)
language plpgsql
stable
set search_path = ''
as $$
begin
    if host is null or position('.' in host) = 0 then
        raise exception using errcode = '22023', message = format('%s is not a full hostname', coalesce(host, 'null')),
            hint = 'Pass the whole host name, such as api.example.com (see recent_entries for the hosts seen).';
    end if;
    if "limit" is null or "limit" not between 1 and 100 then
        raise exception using errcode = '22023', message = 'limit is between 1 and 100';
    end if;
    return query
    select e.id, e.captured_at, e.device_uuid, e.method,
        e.scheme || '://' || e.host || coalesce(':' || e.port, '') || e.path || coalesce('?' || e.query, ''),
        e.status, e.duration_ms,
        private.redact_headers(e.request_headers), t.request_text,
        case when t.request_text is null then encode(e.request_body, 'base64') end,
        e.request_body_size, e.request_body_truncated,
        private.redact_headers(e.response_headers), t.response_text,
        case when t.response_text is null then encode(e.response_body, 'base64') end,
        e.response_body_size, e.response_body_truncated
    -- One ordered lookup per readable workspace (workspace_id = w, host = h on the host index, stopping after
    -- `limit`); a single `workspace_id = ANY(...)` would fetch and sort every flow of the host instead.
    from unnest(private.entry_workspaces()) as w (id)
    cross join lateral (
        select x.* from public.entries as x
        where x.workspace_id = w.id and x.host = lower(inspect_requests.host)
        order by x.captured_at desc
        limit "limit"
    ) as e
    cross join lateral (
        select private.body_text(e.request_body) as request_text, private.body_text(e.response_body) as response_text
    ) as t
    order by e.captured_at desc
    limit "limit";
end;
$$;
comment on function public.inspect_requests(text, integer) is
'The newest flows for one exact hostname, with bodies and with credentials in headers redacted (entries:view).';

create or replace function public.count_entries(
    since timestamptz default now() - interval '1 hour', device uuid default null, host text default null
)
returns bigint
language sql
stable
set search_path = ''
as $$
    select count(*) from public.entries as e
    where e.captured_at >= coalesce(count_entries.since, '-infinity')
        and (count_entries.device is null or e.device_uuid = count_entries.device)
        and (count_entries.host is null or e.host = lower(count_entries.host))
$$;
comment on function public.count_entries(timestamptz, uuid, text) is
'How many flows were captured since a time (default the last hour), optionally for one device or host.';

create or replace function public.recent_entries("limit" integer default 50, device uuid default null, host text default null)
returns table (
    id uuid, captured_at timestamptz, workspace_id uuid, device_uuid uuid, source text, method text, scheme text,
    host text, port integer, path text, query text, status integer, duration_ms real, request_size bigint,
    response_size bigint, response_content_type text, error text
)
language sql
stable
set search_path = ''
as $$
    select e.id, e.captured_at, e.workspace_id, e.device_uuid, e.source, e.method, e.scheme, e.host, e.port, e.path,
        e.query, e.status, e.duration_ms, e.request_size, e.response_size, e.response_content_type, e.error
    from unnest(private.entry_workspaces()) as w (id)
    cross join lateral (
        -- One ordered lookup per readable workspace, as in inspect_requests.
        select x.* from public.entries as x
        where x.workspace_id = w.id
            and (recent_entries.device is null or x.device_uuid = recent_entries.device)
            and (recent_entries.host is null or x.host = lower(recent_entries.host))
        order by x.captured_at desc
        limit least(greatest(coalesce("limit", 50), 1), 500)
    ) as e
    order by e.captured_at desc
    limit least(greatest(coalesce("limit", 50), 1), 500)
$$;
comment on function public.recent_entries(integer, uuid, text) is
'The newest flows (metadata only, at most 500), optionally for one device or host.';

revoke execute on function public.inspect_requests(text, integer), public.count_entries(timestamptz, uuid, text),
public.recent_entries(integer, uuid, text) from public, anon;
grant execute on function public.inspect_requests(text, integer), public.count_entries(timestamptz, uuid, text),
public.recent_entries(integer, uuid, text) to authenticated, service_role;
