-- Testing: grants for product roles that exist by the time the helpers are laid (the template applies
-- migrations first), over every helper file before this one.
do $grants$
begin
    if exists (select from pg_catalog.pg_roles where rolname = 'device') then
        grant usage on schema tests to device;
        grant execute on all functions in schema tests to device;
        grant select on tests.world to device;
    end if;
end
$grants$;
