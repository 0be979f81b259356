// Drives the unchanged @supabase/supabase-js client against a started Busymate stack's /rest/v1.
//
// Run by tests/e2e/test_rest_supabase_js.py. Inputs (environment):
//   API_URL      the stack's API base URL (http://127.0.0.1:PORT)
//   ANON_KEY     the project's anon key
//   SERVICE_KEY  the project's service_role key
//   JWT_SECRET   the HS256 secret, to sign an expired token
//   WORLD        JSON {"ids": {name: uuid}, "tokens": {name: jwt}} from tests/world.py
//   ONLY         optional comma-separated check names, to run a subset while debugging
//
// Output: one JSON object on stdout, {"node": version, "supabase_js": version, "checks": {name: result}}, where
// result = {"ok": bool, "details": ..., "exchanges": [...]} and exchanges are the HTTP requests the check sent
// with what came back (recorded only for failing checks). Each check is independent: one failing does not stop
// the others. The exit code is 0 whenever the JSON was printed; pytest judges the results.

import { randomUUID } from "node:crypto";
import { AsyncLocalStorage } from "node:async_hooks";
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";
import { expect, failureOf, runChecks, signHs256 } from "./harness.mjs";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`missing environment variable ${name}`);
  return value;
};

const API_URL = env("API_URL");
const ANON_KEY = env("ANON_KEY");
const SERVICE_KEY = env("SERVICE_KEY");
const JWT_SECRET = env("JWT_SECRET");
const WORLD = JSON.parse(env("WORLD"));
const { ids, tokens } = WORLD;

// ---------------------------------------------------------------------------------------------------------------
// Recording every HTTP exchange of the current check (the client itself is untouched: it calls globalThis.fetch).

const current = new AsyncLocalStorage();
const realFetch = globalThis.fetch;

function headersObject(headers) {
  const out = {};
  new Headers(headers || {}).forEach((value, key) => {
    out[key] = value;
  });
  return out;
}

globalThis.fetch = async (input, init = {}) => {
  const log = current.getStore();
  const request = input instanceof Request ? input : null;
  const exchange = {
    method: init.method || request?.method || "GET",
    url: String(request ? request.url : input),
    headers: headersObject(init.headers || request?.headers),
    body: typeof init.body === "string" ? init.body : init.body == null ? null : String(init.body),
  };
  if (log) log.push(exchange);
  const response = await realFetch(input, init);
  if (log) {
    exchange.status = response.status;
    exchange.response_headers = headersObject(response.headers);
    try {
      exchange.response_body = await response.clone().text();
    } catch (err) {
      exchange.response_body = `<unreadable: ${err}>`;
    }
  }
  return response;
};

// ---------------------------------------------------------------------------------------------------------------
// Clients, as an integrator following the Supabase docs would create them on Node 20.

const options = (token) => ({
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: WebSocket },
  ...(token ? { global: { headers: { Authorization: `Bearer ${token}` } } } : {}),
});

const asToken = (token) => createClient(API_URL, ANON_KEY, options(token));
const anon = createClient(API_URL, ANON_KEY, options());
const service = createClient(API_URL, SERVICE_KEY, options());
const member = asToken(tokens.member);


// ---------------------------------------------------------------------------------------------------------------
// A tiny assertion helper: every failure says what was expected and what the client returned.


const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function expectOk(result, what) {
  expect(result.error === null, `${what}: expected no error`, result);
}

function expectError(result, { code, status }, what) {
  expect(result.error !== null, `${what}: expected an error`, result);
  if (code !== undefined) {
    expect(result.error.code === code, `${what}: expected error.code ${code}, got ${result.error.code}`, result);
  }
  if (status !== undefined) {
    expect(result.status === status, `${what}: expected status ${status}, got ${result.status}`, result);
  }
}

// ---------------------------------------------------------------------------------------------------------------
// The checks. Each returns something small to report on success, or throws.

const tagPrefix = `js-${randomUUID().slice(0, 8)}`;
const checks = {};

checks.member_sees_only_own_workspace_devices = async () => {
  const result = await member.from("devices").select("uuid, name, workspace_id");
  expectOk(result, "select devices");
  const names = result.data.map((r) => r.name);
  expect(names.includes("d1-e2e"), "d1-e2e (member's own workspace) is listed", result);
  expect(names.includes("d_unpaired-e2e"), "d_unpaired-e2e (member's own workspace) is listed", result);
  expect(!names.includes("d2-e2e"), "d2-e2e (another workspace) is hidden by RLS", result);
  expect(result.data.every((r) => r.workspace_id === ids.w1), "every row is in w1", result);
  expect(result.status === 200, "status 200", result);
  return { names };
};

checks.select_rename_embed_eq_in_order_limit_count = async () => {
  const result = await member
    .from("devices")
    .select("id:uuid, label:name, workspace:workspaces(slug)", { count: "exact" })
    .eq("workspace_id", ids.w1)
    .in("name", ["d1-e2e", "d_unpaired-e2e", "d2-e2e"])
    .order("name", { ascending: false })
    .limit(5);
  expectOk(result, "select");
  const expected = [
    { id: ids.d_unpaired, label: "d_unpaired-e2e", workspace: { slug: "w1-e2e" } },
    { id: ids.d1, label: "d1-e2e", workspace: { slug: "w1-e2e" } },
  ];
  expect(same(result.data, expected), "renamed columns, embed, filters and descending order", result);
  expect(result.count === 2, `count 2, got ${result.count}`, result);
  return { count: result.count };
};

checks.limit_with_exact_count_is_partial = async () => {
  const result = await member
    .from("devices")
    .select("name", { count: "exact" })
    .eq("workspace_id", ids.w1)
    .order("name")
    .limit(1);
  expectOk(result, "select");
  expect(same(result.data, [{ name: "d1-e2e" }]), "first row by name", result);
  expect(result.count === 2, `count is the total (2), got ${result.count}`, result);
  expect(result.status === 206, `status 206 (1 of 2 rows), got ${result.status}`, result);
  return { count: result.count, status: result.status };
};

checks.single_returns_an_object = async () => {
  const result = await member.from("devices").select("name").eq("uuid", ids.d1).single();
  expectOk(result, "single");
  expect(same(result.data, { name: "d1-e2e" }), "a single object", result);
  expect(result.status === 200, "status 200", result);
  return result.data;
};

checks.single_on_a_row_rls_hides_is_PGRST116 = async () => {
  const result = await member.from("devices").select("name").eq("uuid", ids.d2).single();
  expectError(result, { code: "PGRST116", status: 406 }, "single on a hidden row");
  expect(result.data === null, "data null", result);
  return result.error;
};

checks.maybe_single_on_a_row_rls_hides_is_null = async () => {
  const result = await member.from("devices").select("name").eq("uuid", ids.d2).maybeSingle();
  expectOk(result, "maybeSingle");
  expect(result.data === null, "data null", result);
  const found = await member.from("devices").select("name").eq("uuid", ids.d1).maybeSingle();
  expectOk(found, "maybeSingle on a visible row");
  expect(same(found.data, { name: "d1-e2e" }), "a visible row comes back as an object", found);
  return { hidden: result.data, visible: found.data };
};

checks.or_filter = async () => {
  const result = await member.from("devices").select("name").or("name.eq.d1-e2e,name.eq.nothing");
  expectOk(result, "or");
  expect(same(result.data, [{ name: "d1-e2e" }]), "only d1-e2e matches", result);
  return result.data;
};

checks.not_filter = async () => {
  const result = await member.from("devices").select("name").eq("workspace_id", ids.w1).not("name", "eq", "d1-e2e");
  expectOk(result, "not");
  expect(same(result.data, [{ name: "d_unpaired-e2e" }]), "everything in w1 but d1-e2e", result);
  return result.data;
};

checks.range_0_0 = async () => {
  const result = await member.from("devices").select("name").eq("workspace_id", ids.w1).order("name").range(0, 0);
  expectOk(result, "range");
  expect(same(result.data, [{ name: "d1-e2e" }]), "exactly the first row", result);
  return result.data;
};

checks.csv_returns_text_with_a_header = async () => {
  const result = await member.from("devices").select("name,source").eq("uuid", ids.d1).csv();
  expectOk(result, "csv");
  expect(typeof result.data === "string", "data is a string", result);
  const lines = result.data.split("\n");
  expect(lines[0] === "name,source", "first line is the header", result);
  expect(lines[1] === "d1-e2e,proxy", "second line is the row", result);
  return result.data;
};

checks.head_with_exact_count = async () => {
  const result = await member
    .from("devices")
    .select("*", { head: true, count: "exact" })
    .eq("workspace_id", ids.w1);
  expectOk(result, "head");
  expect(result.data === null, "no data for HEAD", result);
  expect(result.count === 2, `count 2, got ${result.count}`, result);
  expect(result.status === 200, `status 200, got ${result.status}`, result);
  return { count: result.count, status: result.status };
};

checks.insert_without_select_is_minimal = async () => {
  const name = `${tagPrefix}-minimal`;
  const result = await service.from("tags").insert({ name, match_patterns: ["minimal.example.com"] });
  expectOk(result, "insert");
  expect(result.data === null, "data null (return=minimal)", result);
  expect(result.status === 201, `status 201, got ${result.status}`, result);
  const stored = await service.from("tags").select("name, match_patterns").eq("name", name);
  expectOk(stored, "read back");
  expect(same(stored.data, [{ name, match_patterns: ["minimal.example.com"] }]), "the row was inserted", stored);
  return { status: result.status };
};

checks.insert_with_select_returns_the_rows = async () => {
  const rows = [
    { name: `${tagPrefix}-a`, match_patterns: ["a.example.com"] },
    { name: `${tagPrefix}-b`, match_patterns: [] },
  ];
  const result = await service.from("tags").insert(rows).select("id, name, match_patterns");
  expectOk(result, "insert");
  expect(result.status === 201, `status 201, got ${result.status}`, result);
  expect(Array.isArray(result.data) && result.data.length === 2, "two rows back", result);
  const byName = Object.fromEntries(result.data.map((r) => [r.name, r]));
  expect(same(byName[`${tagPrefix}-a`]?.match_patterns, ["a.example.com"]), "text[] round-trips", result);
  expect(same(byName[`${tagPrefix}-b`]?.match_patterns, []), "empty text[] round-trips", result);
  expect(result.data.every((r) => /^[0-9a-f-]{36}$/.test(r.id)), "ids come from the default", result);
  return { status: result.status, names: Object.keys(byName) };
};

checks.insert_single_with_select_single = async () => {
  const name = `${tagPrefix}-single`;
  const result = await service.from("tags").insert({ name }).select("name, match_patterns").single();
  expectOk(result, "insert single");
  expect(same(result.data, { name, match_patterns: [] }), "one object, defaults applied", result);
  expect(result.status === 201, `status 201, got ${result.status}`, result);
  return result.data;
};

checks.update_with_select = async () => {
  const name = `${tagPrefix}-update`;
  const created = await service.from("tags").insert({ name, match_patterns: ["old.example.com"] });
  expectOk(created, "insert");
  const result = await service
    .from("tags")
    .update({ match_patterns: ["new.example.com", "x.example.com"] })
    .eq("name", name)
    .select("name, match_patterns");
  expectOk(result, "update");
  expect(result.status === 200, `status 200, got ${result.status}`, result);
  expect(same(result.data, [{ name, match_patterns: ["new.example.com", "x.example.com"] }]), "updated row", result);
  const minimal = await service.from("tags").update({ color: "#123456" }).eq("name", name);
  expectOk(minimal, "update without select");
  expect(minimal.status === 204 && minimal.data === null, "update without select: 204, data null", minimal);
  return result.data;
};

checks.delete_with_select = async () => {
  const name = `${tagPrefix}-delete`;
  const created = await service.from("tags").insert({ name });
  expectOk(created, "insert");
  const result = await service.from("tags").delete().eq("name", name).select("name");
  expectOk(result, "delete");
  expect(result.status === 200, `status 200, got ${result.status}`, result);
  expect(same(result.data, [{ name }]), "deleted row comes back", result);
  const after = await service.from("tags").select("id").eq("name", name);
  expectOk(after, "read back");
  expect(same(after.data, []), "the row is gone", after);
  const none = await service.from("tags").delete().eq("name", `${tagPrefix}-nothing`);
  expectOk(none, "delete without select");
  expect(none.status === 204 && none.data === null, "delete without select: 204, data null", none);
  return result.data;
};

checks.upsert_on_conflict_name = async () => {
  const name = `${tagPrefix}-upsert`;
  const inserted = await service
    .from("tags")
    .upsert({ name, match_patterns: ["one.example.com"] }, { onConflict: "name" })
    .select("id, name, match_patterns");
  expectOk(inserted, "upsert (insert)");
  expect(inserted.status === 201, `a new row: status 201, got ${inserted.status}`, inserted);
  const id = inserted.data?.[0]?.id;
  const updated = await service
    .from("tags")
    .upsert({ name, match_patterns: ["two.example.com"] }, { onConflict: "name" })
    .select("id, name, match_patterns");
  expectOk(updated, "upsert (update)");
  expect(
    same(updated.data, [{ id, name, match_patterns: ["two.example.com"] }]),
    "the same row (same id) was updated",
    updated,
  );
  expect(updated.status === 200, `every row updated: status 200, got ${updated.status}`, updated);
  const ignored = await service
    .from("tags")
    .upsert({ name, match_patterns: ["three.example.com"] }, { onConflict: "name", ignoreDuplicates: true })
    .select("name");
  expectOk(ignored, "upsert ignoreDuplicates");
  expect(same(ignored.data, []), "ignore-duplicates returns no row for a conflict", ignored);
  const stored = await service.from("tags").select("match_patterns").eq("name", name).single();
  expectOk(stored, "read back");
  expect(same(stored.data, { match_patterns: ["two.example.com"] }), "ignore-duplicates changed nothing", stored);
  return { inserted: inserted.status, updated: updated.status };
};

checks.device_ingests_entries_through_rpc = async () => {
  const device = asToken(tokens.d1);
  const result = await device.rpc("ingest_entries", {
    batch: [{ method: "GET", host: "js.example.com", status: 200 }],
  });
  expectOk(result, "rpc ingest_entries");
  expect(result.status === 200, `status 200, got ${result.status}`, result);
  expect(result.data?.inserted === 1, "inserted 1", result);
  const stored = await service
    .from("entries")
    .select("host, device_uuid")
    .eq("host", "js.example.com")
    .eq("device_uuid", ids.d1);
  expectOk(stored, "read back as service");
  expect(stored.data.length >= 1, "the entry is stored for d1", stored);
  return result.data;
};

checks.device_reading_entries_is_42501 = async () => {
  const device = asToken(tokens.d1);
  const result = await device.from("entries").select("id");
  expectError(result, { code: "42501", status: 403 }, "device reads entries");
  return { status: result.status, error: result.error };
};

checks.anon_reading_devices_is_42501_401 = async () => {
  const result = await anon.from("devices").select("uuid");
  expectError(result, { code: "42501", status: 401 }, "anon reads devices");
  return { status: result.status, error: result.error };
};

checks.expired_user_token_is_PGRST303_401 = async () => {
  const now = Math.floor(Date.now() / 1000);
  const expired = signHs256(
    {
      sub: ids.member,
      role: "authenticated",
      aud: "authenticated",
      email: "member-e2e@test.busymate.local",
      iat: now - 7200,
      exp: now - 3600,
      session_id: randomUUID(),
      app_metadata: { provider: "email" },
      user_metadata: {},
    },
    JWT_SECRET,
  );
  const result = await asToken(expired).from("devices").select("uuid");
  expectError(result, { code: "PGRST303", status: 401 }, "expired token");
  expect(result.error.message === "JWT expired", `message "JWT expired", got ${result.error.message}`, result);
  return { status: result.status, error: result.error };
};

checks.whoami_as_member = async () => {
  const result = await member.rpc("whoami");
  expectOk(result, "rpc whoami");
  expect(result.status === 200, `status 200, got ${result.status}`, result);
  const me = result.data;
  expect(me && typeof me === "object" && !Array.isArray(me), "a JSON object", result);
  expect(me.kind === "user", "kind user", result);
  expect(me.id === ids.member, "id is the member's", result);
  expect(me.email === "member-e2e@test.busymate.local", "email", result);
  expect(me.role === "member", "role member", result);
  expect(me.grants_all === false, "grants_all false", result);
  expect(same(me.workspaces, [ids.w1]), "workspaces [w1]", result);
  expect(same([...me.devices].sort(), [ids.d1, ids.d_unpaired].sort()), "devices owned: d1, d_unpaired", result);
  expect(me.capabilities && typeof me.capabilities === "object", "capabilities object", result);
  return { kind: me.kind, role: me.role, keys: Object.keys(me).sort() };
};

checks.bad_select_is_PGRST100_400 = async () => {
  const result = await member.from("devices").select("name,,x");
  expectError(result, { code: "PGRST100", status: 400 }, "select=name,,x");
  return { status: result.status, error: result.error };
};

// Beyond the basics: what postgrest-js puts on the wire differently from the Python client (contract §9).

checks.in_quotes_values_with_reserved_chars = async () => {
  // postgrest-js sends name=in.(d1-e2e,"a,b","c(d)")
  const result = await member.from("devices").select("name").in("name", ["d1-e2e", "a,b", "c(d)"]);
  expectOk(result, "in");
  expect(same(result.data, [{ name: "d1-e2e" }]), "only d1-e2e matches", result);
  return result.data;
};

checks.more_filter_operators = async () => {
  const devices = await member
    .from("devices")
    .select("name")
    .is("model", null)
    .like("name", "d1%")
    .neq("source", "ios")
    .match({ workspace_id: ids.w1, source: "proxy" })
    .filter("name", "in", '("d1-e2e","d2-e2e")');
  expectOk(devices, "is/like/neq/match/filter");
  expect(same(devices.data, [{ name: "d1-e2e" }]), "only d1-e2e matches", devices);
  const name = `${tagPrefix}-ops`;
  const created = await service.from("tags").insert({ name, match_patterns: ["p.example.com", "q example"] });
  expectOk(created, "insert");
  const tags = await service
    .from("tags")
    .select("name")
    .ilike("name", `${tagPrefix.toUpperCase()}-OP%`)
    .contains("match_patterns", ["q example"])
    .overlaps("match_patterns", ["p.example.com", "zzz"]);
  expectOk(tags, "ilike/contains/overlaps");
  expect(same(tags.data, [{ name }]), "the tag matches", tags);
  return { devices: devices.data, tags: tags.data };
};

checks.insert_with_count_and_select = async () => {
  // Prefer: count=exact, return=representation (postgrest-js joins appended preferences with ", ")
  const name = `${tagPrefix}-count`;
  const result = await service.from("tags").insert({ name }, { count: "exact" }).select("name");
  expectOk(result, "insert");
  expect(same(result.data, [{ name }]), "the row comes back", result);
  expect(result.count === 1, `count 1, got ${result.count}`, result);
  expect(result.status === 201, `status 201, got ${result.status}`, result);
  return { count: result.count };
};

checks.embedded_order_and_limit = async () => {
  // workspaces?select=slug,devices(name)&id=eq.W1&devices.order=name.desc&devices.limit=1
  const result = await member
    .from("workspaces")
    .select("slug, devices(name)")
    .eq("id", ids.w1)
    .order("name", { referencedTable: "devices", ascending: false })
    .limit(1, { referencedTable: "devices" });
  expectOk(result, "embedded order/limit");
  expect(same(result.data, [{ slug: "w1-e2e", devices: [{ name: "d_unpaired-e2e" }] }]), "one embedded row", result);
  return result.data;
};

checks.strip_nulls = async () => {
  const many = await member.from("devices").select("name, model").eq("uuid", ids.d1).stripNulls();
  expectOk(many, "stripNulls");
  expect(same(many.data, [{ name: "d1-e2e" }]), "null model stripped from the array", many);
  const one = await member.from("devices").select("name, model").eq("uuid", ids.d1).single().stripNulls();
  expectOk(one, "single().stripNulls()");
  expect(same(one.data, { name: "d1-e2e" }), "null model stripped from the object", one);
  return { many: many.data, one: one.data };
};

checks.maybe_single_on_many_rows_is_PGRST116 = async () => {
  // Decided by the client from the plain array the server returns.
  const result = await member.from("devices").select("name").eq("workspace_id", ids.w1).maybeSingle();
  expectError(result, { code: "PGRST116", status: 406 }, "maybeSingle on two rows");
  return result.error;
};

checks.range_past_the_end_is_PGRST103_416 = async () => {
  const result = await member
    .from("devices")
    .select("name", { count: "exact" })
    .eq("workspace_id", ids.w1)
    .range(5, 6);
  expectError(result, { code: "PGRST103", status: 416 }, "offset 5 of 2 rows");
  return { status: result.status, error: result.error };
};

checks.update_single_on_many_rows_rolls_back = async () => {
  const names = [`${tagPrefix}-r1`, `${tagPrefix}-r2`];
  const created = await service.from("tags").insert(names.map((name) => ({ name })));
  expectOk(created, "insert");
  const result = await service
    .from("tags")
    .update({ color: "#abcdef" })
    .in("name", names)
    .select("name")
    .single();
  expectError(result, { code: "PGRST116", status: 406 }, "update two rows with single()");
  const after = await service.from("tags").select("color").in("name", names);
  expectOk(after, "read back");
  expect(same(after.data, [{ color: "#888888" }, { color: "#888888" }]), "the update was rolled back", after);
  return result.error;
};

checks.rpc_get_whoami = async () => {
  const result = await member.rpc("whoami", {}, { get: true });
  expectOk(result, "rpc whoami (GET)");
  expect(result.data?.kind === "user" && result.data?.id === ids.member, "the member", result);
  return { kind: result.data.kind };
};

checks.device_whoami = async () => {
  const result = await asToken(tokens.d1).rpc("whoami");
  expectOk(result, "rpc whoami as a device");
  const me = result.data;
  expect(me?.kind === "device" && me?.id === ids.d1 && me?.paired === true, "the device, paired", result);
  expect(me.workspace_id === ids.w1 && me.name === "d1-e2e", "its workspace and name", result);
  return me;
};

checks.unknown_function_is_PGRST202_404 = async () => {
  const result = await member.rpc("no_such_function", { a: 1 });
  expectError(result, { code: "PGRST202", status: 404 }, "rpc no_such_function");
  return { status: result.status, error: result.error };
};

checks.unknown_table_is_PGRST205_404 = async () => {
  const result = await member.from("no_such_table").select("*");
  expectError(result, { code: "PGRST205", status: 404 }, "no_such_table");
  return { status: result.status, error: result.error };
};

checks.rollback_preference = async () => {
  // Prefer: tx=rollback (the stack allows the override, as tests/e2e/test_rest_supabase_py.py expects)
  const name = `${tagPrefix}-rollback`;
  const result = await service.from("tags").insert({ name }).select("name").rollback();
  expectOk(result, "insert with rollback()");
  expect(same(result.data, [{ name }]), "the would-be row comes back", result);
  const after = await service.from("tags").select("name").eq("name", name);
  expectOk(after, "read back");
  expect(same(after.data, []), "nothing was committed", after);
  return { status: result.status };
};

checks.max_affected_is_PGRST124 = async () => {
  // Prefer: handling=strict, max-affected=1 on a delete that would remove two rows
  const names = [`${tagPrefix}-m1`, `${tagPrefix}-m2`];
  const created = await service.from("tags").insert(names.map((name) => ({ name })));
  expectOk(created, "insert");
  const result = await service.from("tags").delete().in("name", names).maxAffected(1);
  expectError(result, { code: "PGRST124", status: 400 }, "delete two rows with maxAffected(1)");
  const after = await service.from("tags").select("name").in("name", names).order("name");
  expectOk(after, "read back");
  expect(same(after.data, names.map((name) => ({ name }))), "the delete was rolled back", after);
  return result.error;
};

checks.explain_is_PGRST107_406 = async () => {
  // Plans are off, as on Supabase (db-plan-enabled false): the plan media type is not available.
  const result = await member.from("devices").select("name").explain();
  expectError(result, { code: "PGRST107", status: 406 }, "explain()");
  return { status: result.status, error: result.error };
};

// ---------------------------------------------------------------------------------------------------------------

async function run(name, check) {
  const exchanges = [];
  try {
    const details = await current.run(exchanges, check);
    return { ok: true, details: details ?? null };
  } catch (err) {
    const failure = failureOf(err);
    return { ok: false, details: failure, exchanges };
  }
}

runChecks(checks, run);
