-- Purpose: a device stores traffic through ingest_entries only. A plain INSERT into public.entries let it store
-- rows whose sizes, truncation flags, times and source contradict their content (a 5 MB body with
-- response_body_size = 1, captured in the year 2000, from a source it is not).
-- Affects: the device role's insert grant on public.entries and the policy that went with it.
-- Caveats: private.store_entries (a definer) writes the rows ingest_entries builds from the caller's credential,
-- so the ingest path keeps working; REST answers a direct POST /rest/v1/entries with 42501 (HTTP 403). No API role
-- writes entries directly any more: users never could, and neither may update or delete them.

revoke all on public.entries from device;
drop policy "entries: insert by the capturing device" on public.entries;
