-- Testing: pgTAP in the extensions schema, as `supabase test db` expects it.
-- Affects: the test template only; never applied to the developer's database.
create extension if not exists pgtap with schema extensions;
