// Drives the unchanged @supabase/supabase-js client (realtime-js 2.109, the `ws` transport) against a started
// Busymate stack's /realtime/v1.
//
// Run by tests/e2e/test_realtime_supabase_js.py. Inputs (environment):
//   API_URL      the stack's API base URL (http://127.0.0.1:PORT)
//   ANON_KEY     the project's anon key
//   SERVICE_KEY  the project's service_role key (setup steps only: inserting and deleting device rows)
//   JWT_SECRET   the HS256 secret, to sign short-lived and refreshed user tokens
//   WORLD        JSON {"ids": {name: uuid}, "tokens": {name: jwt}} from tests/world.py
//   REPLAY       JSON {"topic", "since", "before", "events", "public_event"}: messages the Python side stored with
//                realtime.send before Node started (see the test module)
//   ONLY         optional comma-separated check names, to run a subset while debugging
//
// Output: one JSON object on stdout, {"node": version, "supabase_js": version, "checks": {name: result}}, where
// result = {"ok": bool, "details": ..., "frames": [...]} and frames are the WebSocket frames (both directions,
// binary ones decoded), subscribe statuses and HTTP exchanges of the check (recorded only for failing checks).
// Each check is independent: one failing does not stop the others. The exit code is 0 whenever the JSON was
// printed; pytest judges the results.

import { randomUUID } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";
import { CheckFailed, Inbox, WAIT, expect, failureOf, runChecks, signHs256, sleep } from "./harness.mjs";

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
const REPLAY = JSON.parse(env("REPLAY"));
const { ids, tokens } = WORLD;

const QUIET = 600; // how long a check listens for something that must NOT arrive
const EMAIL = { member: "member-e2e@test.busymate.local", nocaps: "nocaps-e2e@test.busymate.local" };
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;

// ---------------------------------------------------------------------------------------------------------------
// What the current check put on the wire: frames of every socket it opened, subscribe statuses, HTTP exchanges.

let trace = null;
let traceStart = 0;

function note(entry) {
  if (trace) trace.push({ ms: Date.now() - traceStart, ...entry });
}

function claimsOf(jwt) {
  try {
    return JSON.parse(Buffer.from(jwt.split(".")[1], "base64url").toString("utf8"));
  } catch {
    return {};
  }
}

// JWTs in frames and URLs are long and unreadable: show whose they are instead.
function shorten(text) {
  return String(text).replace(/eyJ[\w-]+\.[\w-]+\.[\w-]+/g, (jwt) => {
    const c = claimsOf(jwt);
    const name = Object.entries(ids).find(([, id]) => id === c.sub)?.[0];
    return `<jwt role=${c.role}${name ? ` ${name}` : ""} exp=${c.exp}>`;
  });
}

function clip(text, max = 1500) {
  return text.length > max ? `${text.slice(0, max)}...(${text.length} chars)` : text;
}

// Binary frames of the 2.0.0 serializer (contract §3.2): kind 3 client->server, kind 4 server->client.
function decodeBinary(data) {
  const b = Buffer.from(data);
  const kind = b[0];
  let offset;
  const take = (n) => {
    const value = b.subarray(offset, offset + n).toString("utf8");
    offset += n;
    return value;
  };
  const body = (encoding) => (encoding === 1 ? b.subarray(offset).toString("utf8") : `<${b.length - offset} bytes>`);
  if (kind === 3 && b.length >= 7) {
    const [joinRefLen, refLen, topicLen, eventLen, metaLen, encoding] = b.subarray(1, 7);
    offset = 7;
    const join_ref = take(joinRefLen);
    const ref = take(refLen);
    const topic = take(topicLen);
    const event = take(eventLen);
    const metadata = take(metaLen);
    return { kind, join_ref, ref, topic, event, metadata, encoding, payload: body(encoding) };
  }
  if (kind === 4 && b.length >= 5) {
    const [topicLen, eventLen, metaLen, encoding] = b.subarray(1, 5);
    offset = 5;
    const topic = take(topicLen);
    const event = take(eventLen);
    const metadata = take(metaLen);
    return { kind, topic, event, metadata, encoding, payload: body(encoding) };
  }
  return { kind, bytes: b.length };
}

function frameRecord(data, isBinary) {
  if (isBinary) return { binary: decodeBinary(data) };
  const text = Buffer.isBuffer(data) ? data.toString("utf8") : Buffer.from(data).toString("utf8");
  return { text: clip(shorten(text)), raw: text };
}

// The `ws` class the client is given as its transport, recording every frame. One subclass per client label.
function tappedTransport(label) {
  return class TappedWebSocket extends WebSocket {
    constructor(address, protocols, options) {
      super(address, protocols, options);
      this.label = label;
      note({ client: label, dir: "connect", url: shorten(address) });
      this.on("message", (data, isBinary) => note({ client: label, dir: "in", ...frameRecord(data, isBinary) }));
      this.on("close", (code, reason) => note({ client: label, dir: "closed", code, reason: String(reason) }));
      this.on("error", (err) => note({ client: label, dir: "error", error: String(err?.message || err) }));
    }

    send(data, ...rest) {
      const isBinary = typeof data !== "string";
      note({ client: label, dir: "out", ...frameRecord(data, isBinary) });
      return super.send(data, ...rest);
    }
  };
}

const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
  const request = input instanceof Request ? input : null;
  const exchange = {
    dir: "http",
    method: init.method || request?.method || "GET",
    url: shorten(String(request ? request.url : input)),
    body: typeof init.body === "string" ? clip(shorten(init.body)) : init.body == null ? null : "<bytes>",
  };
  note(exchange);
  const response = await realFetch(input, init);
  exchange.status = response.status;
  try {
    exchange.response_body = clip(await response.clone().text());
  } catch (err) {
    exchange.response_body = `<unreadable: ${err}>`;
  }
  return response;
};

// Frames of one client in one direction, in order, without the raw text (kept for assertions only).
function framesOf(label, dir) {
  return (trace || []).filter((f) => f.client === label && f.dir === dir);
}

function parsedText(frame) {
  try {
    return JSON.parse(frame.raw);
  } catch {
    return undefined;
  }
}

// ---------------------------------------------------------------------------------------------------------------
// Assertions: every failure says what was expected and what came back.


// Deep equality that ignores key order (payloads come back through JSON on the server).
function canonical(value) {
  if (Array.isArray(value)) return value.map(canonical);
  if (value && typeof value === "object") {
    return Object.fromEntries(
      Object.keys(value)
        .sort()
        .map((k) => [k, canonical(value[k])]),
    );
  }
  return value;
}

const same = (a, b) => JSON.stringify(canonical(a)) === JSON.stringify(canonical(b));

function expectSame(got, expected, what) {
  expect(same(got, expected), `${what}: expected ${JSON.stringify(expected)}`, got);
}


// ---------------------------------------------------------------------------------------------------------------
// Clients, as an integrator following the Supabase docs would create them on Node 20: the `ws` package as the
// transport; a user or device JWT through the `accessToken` option (what supabase-js documents for tokens it
// did not issue itself; it hands the token to Realtime with setAuth).

let openClients = [];


// A user token like the ones Supabase Auth issues (tests/world.py user_token).
function userToken(name, ttl = 3600) {
  const now = Math.floor(Date.now() / 1000);
  return signHs256(
    {
      sub: ids[name],
      role: "authenticated",
      aud: "authenticated",
      email: EMAIL[name],
      iat: now,
      exp: now + ttl,
      iss: `${API_URL}/auth/v1`,
      session_id: randomUUID(),
      app_metadata: { provider: "email" },
      user_metadata: {},
    },
    JWT_SECRET,
  );
}

async function client(label, { token = null, key = ANON_KEY, vsn = null } = {}) {
  const realtime = { transport: tappedTransport(label), timeout: WAIT };
  if (vsn) realtime.vsn = vsn;
  const options = {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime,
  };
  if (token) options.accessToken = async () => token;
  const supabase = createClient(API_URL, key, options);
  // The constructor starts setAuth(token) without waiting; wait for it so the first join carries the token.
  if (token) await supabase.realtime.setAuth(token);
  openClients.push(supabase);
  return supabase;
}

async function closeAll() {
  const clients = openClients;
  openClients = [];
  await Promise.all(
    clients.map(async (c) => {
      await Promise.race([c.removeAllChannels().catch(() => null), sleep(1500)]);
      await Promise.race([c.realtime.disconnect().catch(() => null), sleep(500)]);
    }),
  );
}

// subscribe() with every status the callback reports; `first` resolves with the first one.
function subscribe(channel, label, timeout = WAIT) {
  const statuses = new Inbox(`${label} ${channel.topic} subscribe statuses`);
  channel.subscribe((status, err) => {
    const entry = { status, message: err ? err.message : undefined, cause: err?.cause };
    note({ client: label, dir: "status", topic: channel.topic, ...entry });
    statuses.push(entry);
  }, timeout);
  return statuses;
}

async function joined(channel, label, timeout = WAIT) {
  const statuses = subscribe(channel, label, timeout);
  const first = await statuses.waitFor(() => true, "a subscribe status", timeout + 1000);
  expect(first.status === "SUBSCRIBED", `${label} joins ${channel.topic}: expected SUBSCRIBED`, first);
  return statuses;
}

const byEvent = (event) => (m) => m.event === event;

// ---------------------------------------------------------------------------------------------------------------
// The checks. Each returns something small to report on success, or throws.

const tag = randomUUID().slice(0, 8);
const checks = {};

// Broadcast on a public channel: the default vsn 2.0.0 sends it as a binary kind-3 frame; the sender does not get
// its own message back (self false by default); the receiver gets exactly what was sent.
checks.broadcast_public_kind3_without_self = async () => {
  const topic = `room-${tag}-plain`;
  const a = await client("A");
  const b = await client("B");
  const aGot = new Inbox("A");
  const bGot = new Inbox("B");
  const chA = a.channel(topic).on("broadcast", { event: "ping" }, aGot.push);
  const chB = b.channel(topic).on("broadcast", { event: "ping" }, bGot.push);
  await joined(chA, "A");
  await joined(chB, "B");
  const payload = { n: 1, text: "héllo, wörld", nested: { list: [1, "two", null, true] } };
  const sent = await chA.send({ type: "broadcast", event: "ping", payload });
  expect(sent === "ok", `send resolves 'ok' (no ack requested), got ${sent}`, sent);
  const got = await bGot.waitFor(byEvent("ping"), "B receives A's ping");
  expectSame(got, { type: "broadcast", event: "ping", payload }, "B's callback payload (contract §3.5: no meta)");
  await sleep(QUIET);
  expect(aGot.items.length === 0, "A (self false) does not receive its own message", aGot.items);
  expect(bGot.items.length === 1, "B receives it once", bGot.items);
  const kind3 = framesOf("A", "out").filter((f) => f.binary?.kind === 3);
  expect(kind3.length === 1, "A sent the broadcast as one binary kind-3 frame", framesOf("A", "out"));
  expect(
    kind3[0].binary.topic === `realtime:${topic}` && kind3[0].binary.event === "ping" && kind3[0].binary.encoding === 1,
    "kind-3 frame: topic realtime:<topic>, event ping, JSON encoding",
    kind3[0].binary,
  );
  const delivered = framesOf("B", "in").find((f) => f.binary?.kind === 4 || f.raw?.includes('"broadcast"'));
  return { receiver_frame: delivered?.binary ? "binary kind 4" : "text", payload: got.payload };
};

checks.broadcast_public_with_self = async () => {
  const topic = `room-${tag}-self`;
  const a = await client("A");
  const b = await client("B");
  const aGot = new Inbox("A");
  const bGot = new Inbox("B");
  const chA = a.channel(topic, { config: { broadcast: { self: true } } }).on("broadcast", { event: "echo" }, aGot.push);
  const chB = b.channel(topic).on("broadcast", { event: "echo" }, bGot.push);
  await joined(chA, "A");
  await joined(chB, "B");
  const payload = { n: 2 };
  await chA.send({ type: "broadcast", event: "echo", payload });
  const own = await aGot.waitFor(byEvent("echo"), "A (self true) receives its own message");
  expectSame(own, { type: "broadcast", event: "echo", payload }, "A's own message");
  const other = await bGot.waitFor(byEvent("echo"), "B receives it too");
  expectSame(other, { type: "broadcast", event: "echo", payload }, "B's copy");
  await sleep(QUIET);
  expect(aGot.items.length === 1 && bGot.items.length === 1, "each receives it exactly once", {
    a: aGot.items,
    b: bGot.items,
  });
  return { own };
};

checks.broadcast_ack_resolves_ok = async () => {
  const topic = `room-${tag}-ack`;
  const a = await client("A");
  const b = await client("B");
  const bGot = new Inbox("B");
  const chA = a.channel(topic, { config: { broadcast: { ack: true } } });
  const chB = b.channel(topic).on("broadcast", { event: "acked" }, bGot.push);
  await joined(chA, "A");
  await joined(chB, "B");
  const status = await chA.send({ type: "broadcast", event: "acked", payload: { n: 3 } }, { timeout: WAIT });
  expect(status === "ok", `send with ack resolves 'ok' (the server replied), got '${status}'`, status);
  const pushed = framesOf("A", "out").find((f) => f.binary?.kind === 3);
  expect(pushed, "A sent a kind-3 frame", framesOf("A", "out"));
  const reply = framesOf("A", "in")
    .map(parsedText)
    .find((m) => Array.isArray(m) && m[3] === "phx_reply" && m[1] === pushed.binary.ref);
  expect(reply, `a phx_reply with the push's ref ${pushed.binary.ref}`, framesOf("A", "in"));
  expectSame(reply[4], { status: "ok", response: {} }, "the ack reply payload");
  expect(reply[0] === pushed.binary.join_ref, "the ack reply carries the channel's join_ref", reply);
  const got = await bGot.waitFor(byEvent("acked"), "B receives the acknowledged message");
  expectSame(got.payload, { n: 3 }, "payload");
  return { status, reply };
};

// The 1.0.0 serializer (JSON objects) beside the default 2.0.0 one, both ways.
checks.broadcast_vsn1_json_serializer = async () => {
  const topic = `room-${tag}-vsn1`;
  const v1 = await client("V1", { vsn: "1.0.0" });
  const v2 = await client("V2");
  const v1Got = new Inbox("V1");
  const v2Got = new Inbox("V2");
  const ch1 = v1.channel(topic).on("broadcast", { event: "*" }, v1Got.push);
  const ch2 = v2.channel(topic).on("broadcast", { event: "*" }, v2Got.push);
  await joined(ch1, "V1");
  await joined(ch2, "V2");
  expect(v1.realtime.endpointURL().includes("vsn=1.0.0"), "V1 connects with vsn=1.0.0", v1.realtime.endpointURL());
  await ch1.send({ type: "broadcast", event: "from-v1", payload: { via: "json", list: [1, 2] } });
  const atV2 = await v2Got.waitFor(byEvent("from-v1"), "V2 (vsn 2) receives V1's JSON push");
  expectSame(atV2, { type: "broadcast", event: "from-v1", payload: { via: "json", list: [1, 2] } }, "at V2");
  await ch2.send({ type: "broadcast", event: "from-v2", payload: { via: "kind3" } });
  const atV1 = await v1Got.waitFor(byEvent("from-v2"), "V1 (vsn 1) receives V2's kind-3 push");
  expectSame(atV1, { type: "broadcast", event: "from-v2", payload: { via: "kind3" } }, "at V1");
  const out = framesOf("V1", "out");
  expect(
    out.every((f) => f.raw !== undefined && parsedText(f) && !Array.isArray(parsedText(f))),
    "V1 sent only JSON objects",
    out,
  );
  expect(
    out.some((f) => parsedText(f)?.event === "broadcast" && parsedText(f)?.payload?.event === "from-v1"),
    "V1's broadcast went out as a JSON object",
    out,
  );
  const incoming = framesOf("V1", "in");
  const bad = incoming.filter((f) => {
    const m = f.raw === undefined ? undefined : parsedText(f);
    return !m || Array.isArray(m) || !("ref" in m) || !("topic" in m) || !("event" in m) || !("payload" in m);
  });
  expect(bad.length === 0, "every frame to V1 is a JSON object with topic, event, payload and ref", bad);
  const broadcastToV1 = incoming.map(parsedText).find((m) => m.event === "broadcast");
  expect(broadcastToV1 && broadcastToV1.ref === null, "a broadcast to V1 has ref null", broadcastToV1);
  return { v1_frames_in: incoming.length };
};

const unauthorized = (topic) => `Unauthorized: You do not have permissions to read from this Channel topic: ${topic}`;

checks.private_join_ws_as_member_and_admin_ok = async () => {
  const topic = `ws:${ids.w1}`;
  const member = await client("member", { token: tokens.member });
  const admin = await client("admin", { token: tokens.admin });
  await joined(member.channel(topic, { config: { private: true } }), "member");
  await joined(admin.channel(topic, { config: { private: true } }), "admin");
  const join = framesOf("member", "out").map(parsedText).find((m) => Array.isArray(m) && m[3] === "phx_join");
  expect(join?.[4]?.access_token === tokens.member, "the join carried the member's token", join);
  expect(join?.[4]?.config?.private === true, "the join asked for a private channel", join);
  const reply = framesOf("member", "in")
    .map(parsedText)
    .find((m) => Array.isArray(m) && m[3] === "phx_reply" && m[1] === join[1]);
  expectSame(reply?.[4], { status: "ok", response: { postgres_changes: [] } }, "join reply (contract §3.4)");
  return { reply: reply[4] };
};

async function expectRefused(label, token, topic) {
  const c = await client(label, { token });
  const statuses = subscribe(c.channel(topic, { config: { private: true } }), label);
  // The real server waits 5 s before a join error; a local stack need not (contract §3.6). Allow for either.
  const first = await statuses.waitFor(() => true, "a subscribe status", 7000);
  expect(first.status === "CHANNEL_ERROR", `${label} on ${topic}: expected CHANNEL_ERROR`, first);
  expect(first.message === unauthorized(topic), `err.message is exactly "${unauthorized(topic)}"`, first);
  const reply = framesOf(label, "in")
    .map(parsedText)
    .find((m) => Array.isArray(m) && m[3] === "phx_reply" && m[4]?.status === "error");
  expectSame(reply?.[4], { status: "error", response: { reason: unauthorized(topic) } }, "the join reply");
  return first;
}

checks.private_join_ws_as_nocaps_refused = async () => expectRefused("nocaps", tokens.nocaps, `ws:${ids.w1}`);

checks.private_join_ws_as_outsider_refused = async () => expectRefused("outsider", tokens.outsider, `ws:${ids.w1}`);

checks.private_join_device_as_outsider_refused = async () =>
  expectRefused("outsider", tokens.outsider, `device:${ids.d1}`);

// ws:<workspace> is written by the database only: a member's push there is dropped (no ack), nobody gets it.
checks.private_send_without_write_is_dropped = async () => {
  const topic = `ws:${ids.w1}`;
  const member = await client("member", { token: tokens.member });
  const admin = await client("admin", { token: tokens.admin });
  const adminGot = new Inbox("admin");
  const chM = member.channel(topic, { config: { private: true, broadcast: { ack: true } } });
  const chA = admin.channel(topic, { config: { private: true } }).on("broadcast", { event: "*" }, adminGot.push);
  await joined(chM, "member");
  await joined(chA, "admin");
  const status = await chM.send({ type: "broadcast", event: "INSERT", payload: { spoofed: true } }, { timeout: 2000 });
  expect(status === "timed out", `an unauthorized push gets no reply: expected 'timed out', got '${status}'`, status);
  expect(adminGot.items.length === 0, "the admin on the same topic receives nothing", adminGot.items);
  return { status };
};

// private.firehose_columns(), migration 20261203101400_create_realtime_topics (docs/traffic.md still shows port and
// response_content_type, which the firehose does not carry).
const FIREHOSE_COLUMNS = [
  "id",
  "device_uuid",
  "captured_at",
  "method",
  "scheme",
  "host",
  "path",
  "query",
  "status",
  "response_size",
  "duration_ms",
  "error",
];

// Broadcast from the database: a device ingests entries, the firehose trigger stores one private INSERT message on
// ws:<workspace>, members with entries:view receive it (docs/traffic.md).
checks.db_broadcast_entries_to_workspace = async () => {
  const member = await client("member", { token: tokens.member });
  const outsider = await client("outsider", { token: tokens.outsider });
  const memberGot = new Inbox("member ws:w1");
  const outsiderGot = new Inbox("outsider ws:w2");
  const chM = member
    .channel(`ws:${ids.w1}`, { config: { private: true } })
    .on("broadcast", { event: "INSERT" }, memberGot.push);
  const chO = outsider
    .channel(`ws:${ids.w2}`, { config: { private: true } })
    .on("broadcast", { event: "*" }, outsiderGot.push);
  await joined(chM, "member");
  await joined(chO, "outsider");
  const host = `rt-${tag}.example.com`;
  const d1 = await client("d1-rest", { token: tokens.d1 });
  const result = await d1.rpc("ingest_entries", {
    batch: [{ method: "GET", scheme: "https", host, port: 443, path: "/v1/me", status: 201, duration_ms: 12.5 }],
  });
  expect(result.error === null && result.data?.inserted === 1, "d1 ingests one entry", result);
  const entryId = result.data.ids[0];
  const hostAt = FIREHOSE_COLUMNS.indexOf("host");
  const msg = await memberGot.waitFor((m) => m.payload?.rows?.some((r) => r[hostAt] === host), "the INSERT message");
  expect(msg.type === "broadcast" && msg.event === "INSERT", "type broadcast, event INSERT", msg);
  expect(typeof msg.meta?.id === "string" && UUID.test(msg.meta.id), "meta.id is the message's uuid", msg);
  expect(msg.meta.replayed === undefined, "a live message is not marked replayed", msg);
  const p = msg.payload;
  expect(p.id === msg.meta.id, "payload.id is the message id (meta.id)", msg);
  expect(
    p.operation === "INSERT" &&
      p.table === "entries" &&
      p.schema === "public" &&
      p.old_record === null &&
      p.count === 1,
    "the broadcast_changes envelope: INSERT on public.entries, old_record null, count 1",
    p,
  );
  expectSame(p.columns, FIREHOSE_COLUMNS, "payload.columns");
  expect(p.rows.length === 1, "one row", p);
  const row = Object.fromEntries(FIREHOSE_COLUMNS.map((c, i) => [c, p.rows[0][i]]));
  expect(
    row.id === entryId &&
      row.device_uuid === ids.d1 &&
      row.method === "GET" &&
      row.scheme === "https" &&
      row.path === "/v1/me" &&
      row.status === 201 &&
      row.duration_ms === 12.5,
    "the row holds the entry's values",
    row,
  );
  expect(p.record?.id === entryId && p.record?.host === host, "record is the entry as an object", p.record);
  // Positive control for the outsider: its own workspace's message does arrive.
  const d2 = await client("d2-rest", { token: tokens.d2 });
  const other = await d2.rpc("ingest_entries", { batch: [{ method: "POST", host: `rt-${tag}-w2.example.com` }] });
  expect(other.error === null && other.data?.inserted === 1, "d2 ingests one entry", other);
  await outsiderGot.waitFor((m) => m.payload?.record?.device_uuid === ids.d2, "the outsider's own w2 message");
  await sleep(QUIET);
  const leaked = outsiderGot.items.filter((m) => JSON.stringify(m).includes(host));
  expect(leaked.length === 0, "the outsider (ws:w2) never sees w1's entry", outsiderGot.items);
  const copies = memberGot.count((m) => m.payload?.rows?.some((r) => r[hostAt] === host));
  expect(copies === 1, "the member receives it once", memberGot.items);
  return { meta: msg.meta, row };
};

// device:<uuid>: the owner sends commands the device receives; the device may send only cdp-result.
checks.device_channel_command_and_result = async () => {
  const topic = `device:${ids.d1}`;
  const member = await client("member", { token: tokens.member });
  const device = await client("d1", { token: tokens.d1 });
  const admin = await client("admin", { token: tokens.admin });
  const memberGot = new Inbox("member");
  const deviceGot = new Inbox("d1");
  const adminGot = new Inbox("admin");
  const chM = member.channel(topic, { config: { private: true } }).on("broadcast", { event: "*" }, memberGot.push);
  const chD = device.channel(topic, { config: { private: true } }).on("broadcast", { event: "*" }, deviceGot.push);
  const chA = admin.channel(topic, { config: { private: true } }).on("broadcast", { event: "*" }, adminGot.push);
  await joined(chM, "member");
  await joined(chD, "d1");
  await joined(chA, "admin");
  const command = { id: 7, method: "Page.navigate", params: { url: "https://example.com/" } };
  await chM.send({ type: "broadcast", event: "cdp-command", payload: command });
  const atDevice = await deviceGot.waitFor(byEvent("cdp-command"), "the device receives the owner's cdp-command");
  expectSame(atDevice, { type: "broadcast", event: "cdp-command", payload: command }, "the command at the device");
  const result = { id: 7, result: { frameId: "F1", loaderId: "L1" } };
  await chD.send({ type: "broadcast", event: "cdp-result", payload: result });
  const atOwner = await memberGot.waitFor(byEvent("cdp-result"), "the owner receives the device's cdp-result");
  expectSame(atOwner, { type: "broadcast", event: "cdp-result", payload: result }, "the result at the owner");
  await adminGot.waitFor(byEvent("cdp-result"), "an admin on the topic receives it too");
  // An event the device may not send is dropped; a later allowed one shows the socket still works.
  await chD.send({ type: "broadcast", event: "cdp-command", payload: { id: 8, forged: true } });
  await chD.send({ type: "broadcast", event: "vpn-on", payload: { forged: true } });
  await chD.send({ type: "broadcast", event: "cdp-result", payload: { id: 9, marker: true } });
  await memberGot.waitFor((m) => m.payload?.marker === true, "the owner receives the device's next cdp-result");
  await sleep(QUIET);
  const forged = [...memberGot.items, ...adminGot.items].filter((m) => m.payload?.forged);
  expect(forged.length === 0, "the device's cdp-command and vpn-on were dropped", forged);
  const own = deviceGot.count(byEvent("cdp-result"));
  expect(own === 0, "the device does not get its own results (self false)", deviceGot.items);
  return { atDevice, atOwner };
};

// A command RPC (docs: integrators rarely broadcast on device: themselves) reaches the device from the database.
checks.device_receives_rpc_command_from_database = async () => {
  const device = await client("d1", { token: tokens.d1 });
  const got = new Inbox("d1");
  const ch = device
    .channel(`device:${ids.d1}`, { config: { private: true } })
    .on("broadcast", { event: "open-sheet" }, got.push);
  await joined(ch, "d1");
  const member = await client("member-rest", { token: tokens.member });
  const sheet = `sheet-${tag}`;
  const result = await member.rpc("open_device_sheet", { device_uuid: ids.d1, sheet });
  expect(result.error === null, "rpc open_device_sheet as the owner", result);
  const msg = await got.waitFor((m) => m.payload?.sheet === sheet, "the device receives open-sheet");
  expect(msg.type === "broadcast" && msg.event === "open-sheet", "event open-sheet", msg);
  expect(UUID.test(msg.meta?.id || ""), "meta.id present", msg);
  expectSame(msg.payload, { device_uuid: ids.d1, sheet, id: msg.meta.id }, "payload: realtime.send added the id");
  return msg;
};

checks.presence_track_untrack = async () => {
  const topic = `presence-${tag}`;
  const alice = await client("alice");
  const bob = await client("bob");
  const events = new Inbox("bob presence");
  // Both sides listen for sync, as the Supabase docs do; that also asks the server for presence at the join.
  const aliceSynced = new Inbox("alice presence");
  const chA = alice
    .channel(topic, { config: { presence: { key: "alice" } } })
    .on("presence", { event: "sync" }, () => aliceSynced.push({ event: "sync", state: chA.presenceState() }));
  const chB = bob
    .channel(topic, { config: { presence: { key: "bob" } } })
    .on("presence", { event: "sync" }, () => events.push({ event: "sync", state: chB.presenceState() }))
    .on("presence", { event: "join" }, (p) => events.push(p))
    .on("presence", { event: "leave" }, (p) => events.push(p));
  await joined(chB, "bob");
  await events.waitFor(byEvent("sync"), "bob syncs the initial presence_state");
  expectSame(chB.presenceState(), {}, "nobody is present yet");
  await joined(chA, "alice");
  const tracked = await chA.track({ status: "online", n: 1 });
  expect(tracked === "ok", `track resolves 'ok', got '${tracked}'`, tracked);
  const join = await events.waitFor((e) => e.event === "join" && e.key === "alice", "bob sees alice join");
  expect(join.newPresences.length === 1, "one new presence", join);
  const meta = join.newPresences[0];
  expect(meta.status === "online" && meta.n === 1 && typeof meta.presence_ref === "string", "alice's meta", join);
  await events.waitFor((e) => e.event === "sync" && e.state.alice, "bob syncs after the join");
  const state = chB.presenceState();
  expect(same(Object.keys(state), ["alice"]) && state.alice.length === 1, "bob's presenceState holds alice", state);
  expectSame(state.alice[0], { status: "online", n: 1, presence_ref: meta.presence_ref }, "alice's state at bob");
  await aliceSynced.waitFor((e) => e.state.alice?.[0]?.status === "online", "alice sees herself too");
  const untracked = await chA.untrack();
  expect(untracked === "ok", `untrack resolves 'ok', got '${untracked}'`, untracked);
  const leave = await events.waitFor((e) => e.event === "leave" && e.key === "alice", "bob sees alice leave");
  expect(leave.leftPresences[0]?.presence_ref === meta.presence_ref, "the same presence left", leave);
  const afterLeave = (e) => events.items.indexOf(e) > events.items.indexOf(leave);
  await events.waitFor((e) => e.event === "sync" && !e.state.alice && afterLeave(e), "bob syncs after the leave");
  expectSame(chB.presenceState(), {}, "bob's presenceState is empty again");
  return { join: meta };
};

// --- postgres_changes ------------------------------------------------------------------------------------------

const service = createClient(API_URL, SERVICE_KEY, {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: WebSocket },
});

async function insertDevice(workspace, name) {
  const result = await service
    .from("devices")
    .insert({ workspace_id: workspace, name, source: "proxy" })
    .select("uuid")
    .single();
  expect(result.error === null, `insert device ${name} (service role)`, result);
  return result.data.uuid;
}

async function deleteDevices(uuids) {
  if (uuids.length) await service.from("devices").delete().in("uuid", uuids);
}

const TIMESTAMP = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

async function subscribedToPostgres(systemInbox, topic) {
  const ok = await systemInbox.waitFor(
    (s) => s.extension === "postgres_changes",
    "system message from postgres_changes after the join",
  );
  expectSame(
    ok,
    { extension: "postgres_changes", status: "ok", message: "Subscribed to PostgreSQL", channel: topic },
    "the system message",
  );
}

checks.postgres_changes_filtered_insert_update_delete = async () => {
  const topic = `pg-${tag}-filter`;
  const member = await client("member", { token: tokens.member });
  const changes = new Inbox("member changes");
  const unmatched = new Inbox("name filter that matches nothing");
  const system = new Inbox("system");
  const ch = member
    .channel(topic)
    .on(
      "postgres_changes",
      { event: "*", schema: "public", table: "devices", filter: `workspace_id=eq.${ids.w1}` },
      changes.push,
    )
    .on(
      "postgres_changes",
      { event: "INSERT", schema: "public", table: "devices", filter: `name=eq.none-${tag}` },
      unmatched.push,
    )
    .on("system", {}, system.push);
  await joined(ch, "member");
  await subscribedToPostgres(system, topic);
  const created = [];
  try {
    const name = `rt-${tag}-w1`;
    const id = await insertDevice(ids.w1, name);
    created.push(id);
    created.push(await insertDevice(ids.w2, `rt-${tag}-w2`)); // filtered out (and hidden by RLS)
    const insert = await changes.waitFor((c) => c.eventType === "INSERT" && c.new.uuid === id, "the w1 INSERT");
    expect(insert.schema === "public" && insert.table === "devices", "schema and table", insert);
    expect(TIMESTAMP.test(insert.commit_timestamp), "commit_timestamp is UTC with milliseconds", insert);
    expect(insert.errors === null, "errors null", insert);
    expectSame(insert.old, {}, "INSERT: old is empty");
    const n = insert.new;
    expect(
      n.name === name &&
        n.workspace_id === ids.w1 &&
        n.source === "proxy" &&
        n.connection_type === "proxy" &&
        n.owner_user_id === null &&
        n.model === null,
      "INSERT: new holds the row",
      n,
    );
    expectSame(n.allowed_sources, ["127.0.0.1/32", "::1/128"], "an array column arrives as an array");
    const renamed = `${name}-renamed`;
    const updated = await service.from("devices").update({ name: renamed }).eq("uuid", id);
    expect(updated.error === null, "update", updated);
    const update = await changes.waitFor((c) => c.eventType === "UPDATE" && c.new.uuid === id, "the w1 UPDATE");
    expect(update.new.name === renamed, "UPDATE: new name", update);
    const oldName = update.old.name === name && update.old.uuid === id;
    expect(oldName, "UPDATE: old (REPLICA IDENTITY FULL) has the old name", update);
    expectSame(update.old, { ...update.new, name }, "UPDATE: old is the whole previous row");
    const deleted = await service.from("devices").delete().eq("uuid", id);
    expect(deleted.error === null, "delete", deleted);
    const del = await changes.waitFor((c) => c.eventType === "DELETE" && c.old.uuid === id, "DELETE of the w1 device");
    // RLS is on for devices: a DELETE carries the primary key only, even with REPLICA IDENTITY FULL (contract §1.6).
    expectSame(del.old, { uuid: id }, "DELETE: old is the primary key only");
    expectSame(del.new, {}, "DELETE: new is empty");
    await sleep(QUIET);
    const mine = changes.items.filter((c) => created.includes(c.new?.uuid) || created.includes(c.old?.uuid));
    expectSame(
      mine.map((c) => [c.eventType, c.new?.uuid || c.old?.uuid]),
      [
        ["INSERT", id],
        ["UPDATE", id],
        ["DELETE", id],
      ],
      "exactly INSERT, UPDATE, DELETE of the w1 device (the w2 one is filtered out)",
    );
    expect(unmatched.items.length === 0, "a binding whose filter matches nothing fires never", unmatched.items);
    return { commit_timestamp: insert.commit_timestamp, update_old_name: update.old.name, delete_old: del.old };
  } finally {
    await deleteDevices(created);
  }
};

checks.postgres_changes_rls_hides_other_workspace = async () => {
  const topic = `pg-${tag}-rls`;
  const outsider = await client("outsider", { token: tokens.outsider });
  const changes = new Inbox("outsider changes");
  const system = new Inbox("system");
  const ch = outsider
    .channel(topic)
    .on("postgres_changes", { event: "*", schema: "public", table: "devices" }, changes.push)
    .on("system", {}, system.push);
  await joined(ch, "outsider");
  await subscribedToPostgres(system, topic);
  const created = [];
  try {
    const w1 = await insertDevice(ids.w1, `rt-${tag}-rls-w1`);
    created.push(w1);
    const w2 = await insertDevice(ids.w2, `rt-${tag}-rls-w2`);
    created.push(w2);
    await service.from("devices").update({ model: "m1" }).eq("uuid", w1);
    await service.from("devices").update({ model: "m2" }).eq("uuid", w2);
    await changes.waitFor((c) => c.eventType === "UPDATE" && c.new.uuid === w2, "the UPDATE of its w2 device");
    await sleep(QUIET);
    const seen = changes.items
      .filter((c) => c.eventType !== "DELETE")
      .filter((c) => created.includes(c.new?.uuid))
      .map((c) => [c.eventType, c.new.uuid === w1 ? "w1" : "w2"]);
    expectSame(
      seen,
      [
        ["INSERT", "w2"],
        ["UPDATE", "w2"],
      ],
      "the outsider gets its own workspace's INSERT and UPDATE and nothing of w1",
    );
    return { seen };
  } finally {
    await deleteDevices(created);
  }
};

checks.postgres_changes_table_not_published_is_system_error = async () => {
  const topic = `pg-${tag}-unpublished`;
  const member = await client("member", { token: tokens.member });
  const system = new Inbox("system");
  const ch = member
    .channel(topic)
    .on("postgres_changes", { event: "*", schema: "public", table: "workspaces" }, () => null)
    .on("system", {}, system.push);
  await joined(ch, "member");
  const error = await system.waitFor((s) => s.extension === "postgres_changes", "a postgres_changes system message");
  expectSame(
    error,
    {
      extension: "postgres_changes",
      status: "error",
      message:
        "Unable to subscribe to changes with given parameters. Please check Realtime is enabled for the given " +
        "connect parameters: [event: *, schema: public, table: workspaces, filters: [], select: nil]",
      channel: topic,
    },
    "the system error (contract §3.6)",
  );
  await sleep(QUIET);
  expect(ch.state === "joined", `the channel stays joined, state ${ch.state}`, ch.state);
  return error;
};

// --- tokens ----------------------------------------------------------------------------------------------------

async function expectFirehose(inbox, deviceToken, label) {
  const host = `rt-${tag}-${label}.example.com`;
  const d = await client(`${label}-rest`, { token: deviceToken });
  const result = await d.rpc("ingest_entries", { batch: [{ method: "GET", host }] });
  expect(result.error === null && result.data?.inserted === 1, "ingest one entry", result);
  return inbox.waitFor((m) => m.payload?.record?.host === host, `the firehose message for ${host}`);
}

checks.set_auth_refresh_keeps_channel = async () => {
  const topic = `ws:${ids.w1}`;
  const member = await client("member", { token: userToken("member", 60) });
  const got = new Inbox("member");
  const ch = member.channel(topic, { config: { private: true } }).on("broadcast", { event: "INSERT" }, got.push);
  const statuses = await joined(ch, "member");
  const fresh = userToken("member", 3600);
  await member.realtime.setAuth(fresh);
  const pushed = framesOf("member", "out")
    .map(parsedText)
    .find((m) => Array.isArray(m) && m[3] === "access_token");
  expect(pushed?.[4]?.access_token === fresh, "the client pushed access_token with the new token", pushed);
  await sleep(QUIET);
  expect(statuses.items.length === 1 && ch.state === "joined", "no error or close after the refresh", statuses.items);
  await expectFirehose(got, tokens.d1, "refresh");
  return { statuses: statuses.items.map((s) => s.status) };
};

checks.set_auth_without_read_closes_channel = async () => {
  const topic = `ws:${ids.w1}`;
  const member = await client("member", { token: tokens.member });
  const system = new Inbox("system");
  const ch = member.channel(topic, { config: { private: true } }).on("system", {}, system.push);
  const statuses = await joined(ch, "member");
  await member.realtime.setAuth(tokens.nocaps);
  const error = await system.waitFor((s) => s.status === "error", "a system error after the refresh to nocaps");
  expectSame(
    error,
    {
      extension: "system",
      status: "error",
      message: `You no longer have permission to read from this Channel topic: ${topic}`,
      channel: topic,
    },
    "the system error (contract §2)",
  );
  await statuses.waitFor((s) => s.status === "CLOSED", "the channel is closed (phx_close)");
  return error;
};

checks.expired_token_closes_private_channel = async () => {
  const topic = `ws:${ids.w1}`;
  const member = await client("member", { token: userToken("member", 3) });
  const system = new Inbox("system");
  const ch = member.channel(topic, { config: { private: true } }).on("system", {}, system.push);
  const statuses = await joined(ch, "member");
  const error = await system.waitFor((s) => s.status === "error", "a system error once the token expires", 3000 + WAIT);
  expect(error.extension === "system" && error.channel === topic, "extension system, channel the sub-topic", error);
  expect(/^Token has expired \d+ seconds ago$/.test(error.message), "message: Token has expired N seconds ago", error);
  await statuses.waitFor((s) => s.status === "CLOSED", "then the channel is closed (phx_close)");
  return error;
};

// --- replay and HTTP -------------------------------------------------------------------------------------------

checks.replay_on_join = async () => {
  const member = await client("member", { token: tokens.member });
  const got = new Inbox("member");
  const ch = member
    .channel(REPLAY.topic, { config: { private: true, broadcast: { replay: { since: REPLAY.since, limit: 10 } } } })
    .on("broadcast", { event: "*" }, got.push);
  await joined(ch, "member");
  await got.waitFor((m) => m.event === REPLAY.events.at(-1), "the last stored message, replayed");
  await sleep(QUIET);
  expectSame(
    got.items.map((m) => m.event),
    REPLAY.events,
    `exactly the private messages stored since ${REPLAY.since}, oldest first ` +
      `(not ${REPLAY.before}, stored before, nor the public ${REPLAY.public_event})`,
  );
  for (const [i, m] of got.items.entries()) {
    expect(m.type === "broadcast" && m.meta?.replayed === true, "meta.replayed is true", m);
    expect(UUID.test(m.meta?.id || "") && m.payload?.id === m.meta.id, "meta.id is the stored message's id", m);
    expectSame(m.payload, { n: i + 1, id: m.meta.id }, "the stored payload");
  }
  return got.items;
};

checks.replay_limit_caps_the_count = async () => {
  const member = await client("member", { token: tokens.member });
  const got = new Inbox("member");
  const ch = member
    .channel(REPLAY.topic, { config: { private: true, broadcast: { replay: { since: REPLAY.since, limit: 1 } } } })
    .on("broadcast", { event: "*" }, got.push);
  await joined(ch, "member");
  await got.waitFor(() => true, "one replayed message");
  await sleep(QUIET);
  expect(got.items.length === 1, "limit 1: exactly one message is replayed", got.items);
  const [m] = got.items;
  expect(REPLAY.events.includes(m.event) && m.meta?.replayed === true, "one of the stored private messages", m);
  // Which one the contract does not say (§3.4: "up to limit"); reported for the record.
  return { replayed: m.event };
};

checks.http_send_public = async () => {
  const topic = `room-${tag}-http`;
  const listener = await client("listener");
  const got = new Inbox("listener");
  await joined(listener.channel(topic).on("broadcast", { event: "*" }, got.push), "listener");
  const sender = await client("sender");
  const ch = sender.channel(topic);
  const result = await ch.httpSend("via-http", { n: 10, text: "ünïcode" });
  expectSame(result, { success: true }, "httpSend result");
  const msg = await got.waitFor(byEvent("via-http"), "the listener receives the HTTP message");
  expect(msg.type === "broadcast", "type broadcast", msg);
  expectSame(msg.payload, { n: 10, text: "ünïcode" }, "payload");
  return msg;
};

checks.http_send_private_and_forbidden = async () => {
  const topic = `device:${ids.d1}`;
  const device = await client("d1", { token: tokens.d1 });
  const got = new Inbox("d1");
  await joined(device.channel(topic, { config: { private: true } }).on("broadcast", { event: "*" }, got.push), "d1");
  const member = await client("member", { token: tokens.member });
  const ok = await member.channel(topic, { config: { private: true } }).httpSend("cdp-command", { id: 21 });
  expectSame(ok, { success: true }, "the owner's private httpSend");
  const msg = await got.waitFor(byEvent("cdp-command"), "the device receives the owner's HTTP command");
  expectSame(msg.payload, { id: 21 }, "payload");
  const nocaps = await client("nocaps", { token: tokens.nocaps });
  let refusal = null;
  try {
    await nocaps.channel(topic, { config: { private: true } }).httpSend("cdp-command", { id: 22, forged: true });
  } catch (err) {
    refusal = err.message;
  }
  expect(refusal === "Unauthorized", `no write permission: 403 {"message": "Unauthorized"}, got ${refusal}`, refusal);
  await sleep(QUIET);
  expect(got.count((m) => m.payload?.forged) === 0, "the refused message is not delivered", got.items);
  return { refusal };
};

checks.send_before_subscribe_falls_back_to_http = async () => {
  const topic = `room-${tag}-fallback`;
  const listener = await client("listener");
  const got = new Inbox("listener");
  await joined(listener.channel(topic).on("broadcast", { event: "*" }, got.push), "listener");
  const sender = await client("sender");
  const warn = console.warn;
  console.warn = () => null; // the client's deprecation notice would otherwise land on stderr
  let status;
  try {
    status = await sender.channel(topic).send({ type: "broadcast", event: "fallback", payload: { n: 11 } });
  } finally {
    console.warn = warn;
  }
  expect(status === "ok", `send on an unjoined channel resolves 'ok' (HTTP 202), got '${status}'`, status);
  const posted = (trace || []).find((f) => f.dir === "http" && f.url.includes("/realtime/v1/api/broadcast"));
  expect(posted, "the client posted to /realtime/v1/api/broadcast", trace);
  const msg = await got.waitFor(byEvent("fallback"), "the listener receives the fallback message");
  expectSame(msg.payload, { n: 11 }, "payload");
  return { status, url: posted.url };
};

// ---------------------------------------------------------------------------------------------------------------

async function run(name, check) {
  trace = [];
  traceStart = Date.now();
  let outcome;
  try {
    const details = await check();
    outcome = { ok: true, details: details ?? null };
  } catch (err) {
    const failure = failureOf(err);
    outcome = { ok: false, details: failure };
  }
  await closeAll();
  if (!outcome.ok) outcome.frames = trace.map(({ raw, ...rest }) => rest);
  trace = null;
  return outcome;
}

runChecks(checks, run);
