-- Purpose: a device that captures traffic is seen: storing its entries moves devices.last_seen_at, so `busymate
-- devices list` no longer says "last seen: never" for a device whose traffic is in the feed.
-- Affects: private.store_entries(jsonb, integer) (redefined; the rest as in 20261121003300).
-- Caveats: one UPDATE per call, never per row, and it writes only when last_seen_at is unset or more than 30
-- seconds old: a device sending a batch every 50 ms rewrites its row at most twice a minute, and the other calls
-- cost one primary-key lookup that changes nothing (no new row version, no WAL, no lock wait). The value is the
-- transaction's start, so it is at most 30 s behind. devices_broadcast_update ignores an update that only moves
-- last_seen_at, so devices:all stays quiet. A batch that is refused as a whole leaves last_seen_at as it was.

create or replace function private.store_entries(batch jsonb, cap integer)
returns jsonb
language plpgsql
security definer
set search_path = ''
set timezone = 'UTC'
as $$
declare
    dev uuid := private.current_device();
    ws uuid;
    src text;
    stored bigint;
    ids jsonb;
begin
    -- A definer: ON CONFLICT under RLS would need a select policy devices must not have, and a device holds no
    -- update grant on devices for last_seen_at. The device and workspace come from the caller's credential,
    -- nothing else; any value the types or constraints refuse raises.
    select d.workspace_id, d.source into ws, src from public.devices as d where d.uuid = dev;
    if dev is null or ws is null then
        raise exception using errcode = '42501', message = 'only a paired device stores entries';
    end if;
    if jsonb_path_exists(batch, '$[*] ? (!exists(@.id) || @.id == null)') then
        -- Capture clients send ids (so a resent batch is recognised); give one to each row that has none.
        select jsonb_agg(
            case when jsonb_typeof(a.e) = 'object' and coalesce(a.e -> 'id', 'null') = 'null'
                then a.e || jsonb_build_object('id', gen_random_uuid()) else a.e end
            order by a.k
        )
        into batch
        from jsonb_array_elements(batch) with ordinality as a (e, k);
    end if;
    begin
        insert into public.entries select * from private.entry_rows(batch, cap, ws, dev, src);
        get diagnostics stored = row_count;
    exception when unique_violation then
        -- Some rows are already stored (a resent batch): they are duplicates, not errors.
        insert into public.entries select * from private.entry_rows(batch, cap, ws, dev, src)
        on conflict (id, captured_at) do nothing;
        get diagnostics stored = row_count;
    end;
    -- Seen: at most once per 30 s per device (see the header).
    update public.devices as d set last_seen_at = now()
    where d.uuid = dev and (d.last_seen_at is null or d.last_seen_at < now() - interval '30 seconds');
    -- The ids as the database spells them, in the batch's order.
    select coalesce(jsonb_agg(x.id), '[]') into ids from jsonb_to_recordset(batch) as x (id uuid);
    return jsonb_build_object('stored', stored, 'ids', ids);
end;
$$;
