-- Platform layer: the tables the local /auth/v1 keeps beside auth.users (GoTrue has its own; these follow
-- their names and columns where the clients can see them).
-- Affects: auth.sessions, auth.refresh_tokens, auth.identities, auth.oauth_clients, auth.oauth_authorizations.
-- Caveats: only supabase_auth_admin (the auth server's login) reads or writes them; the API roles get nothing.
-- Refresh tokens and authorization codes are stored as SHA-256 digests, never in the clear.

create table if not exists auth.sessions (
    id uuid primary key,
    user_id uuid not null references auth.users (id) on delete cascade,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    refreshed_at timestamptz,
    not_after timestamptz,
    aal text not null default 'aal1',
    user_agent text,
    ip inet,
    -- The OAuth client a session was granted to (null for a password sign-in), and the resource its tokens name.
    oauth_client_id text,
    resource text
);
-- The scope an OAuth grant carries (busymate:read, busymate:write: what the user chose at consent).
alter table auth.sessions add column if not exists scope text;
create index if not exists sessions_user_id_idx on auth.sessions (user_id);

create table if not exists auth.refresh_tokens (
    id bigserial primary key,
    token_hash bytea not null unique,
    session_id uuid not null references auth.sessions (id) on delete cascade,
    user_id uuid not null references auth.users (id) on delete cascade,
    parent bigint,
    revoked boolean not null default false,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);
create index if not exists refresh_tokens_session_id_idx on auth.refresh_tokens (session_id);

create table if not exists auth.identities (
    id uuid primary key default gen_random_uuid(),
    provider_id text not null,
    user_id uuid not null references auth.users (id) on delete cascade,
    identity_data jsonb not null,
    provider text not null,
    last_sign_in_at timestamptz,
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now(),
    email text generated always as (lower(identity_data ->> 'email')) stored,
    unique (provider_id, provider)
);
create index if not exists identities_user_id_idx on auth.identities (user_id);

create table if not exists auth.oauth_clients (
    client_id text primary key,
    client_secret_hash bytea,
    registration_type text not null check (registration_type in ('dynamic', 'manual', 'metadata_document')),
    client_name text,
    client_uri text,
    logo_uri text,
    redirect_uris text[] not null,
    grant_types text[] not null default '{authorization_code,refresh_token}',
    token_endpoint_auth_method text not null default 'none',
    created_at timestamptz not null default now(),
    updated_at timestamptz not null default now()
);

create table if not exists auth.oauth_authorizations (
    id uuid primary key,
    client_id text not null references auth.oauth_clients (client_id) on delete cascade,
    redirect_uri text not null,
    state text,
    scope text not null default '',
    resource text,
    code_challenge text not null,
    status text not null default 'pending' check (status in ('pending', 'approved', 'denied', 'used')),
    user_id uuid references auth.users (id) on delete cascade,
    code_hash bytea unique,
    created_at timestamptz not null default now(),
    expires_at timestamptz not null
);

do $owners$
declare
    t text;
begin
    foreach t in array array['sessions', 'refresh_tokens', 'identities', 'oauth_clients', 'oauth_authorizations'] loop
        execute format('alter table auth.%I owner to supabase_auth_admin', t);
        execute format('alter table auth.%I enable row level security', t);
        execute format('revoke all on auth.%I from anon, authenticated, service_role', t);
    end loop;
end
$owners$;
alter sequence auth.refresh_tokens_id_seq owner to supabase_auth_admin;

-- As on Supabase, postgres (migrations, the SQL editor, tests) may manage them too.
grant all on auth.sessions, auth.refresh_tokens, auth.identities, auth.oauth_clients, auth.oauth_authorizations
to postgres, dashboard_user;
grant usage, select on sequence auth.refresh_tokens_id_seq to postgres, dashboard_user;
