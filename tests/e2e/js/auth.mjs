// Drives the unchanged @supabase/supabase-js client (auth-js 2.109, the `ws` Realtime transport) against a started
// Busymate stack's GoTrue-compatible /auth/v1, and then uses the session it gets on /rest/v1 and /realtime/v1.
//
// Run by tests/e2e/test_auth_supabase_js.py. Inputs (environment):
//   API_URL      the stack's API base URL (http://127.0.0.1:PORT)
//   AUTH_URL     its /auth/v1 (the `iss` of the tokens it issues)
//   ANON_KEY     the project's anon key
//   SERVICE_KEY  the project's service_role key (the admin checks, the clean-up and one HTTP broadcast)
//   WORLD        JSON {"ids": {name: uuid}, "tokens": {name: jwt}} from tests/world.py
//   TAG          a random tag: every user this script creates is js-<TAG>-<name>@example.com
//   MEMBER       JSON {"id", "email", "password"}: a user the Python side created through the admin API and made a
//                member of workspace w1 (profiles.role 'member'), for one_token_everywhere
//   ONLY         optional comma-separated check names, to run a subset while debugging
//
// Output: one JSON object on stdout, {"node": version, "supabase_js": version, "checks": {name: result}}, where
// result = {"ok": bool, "details": ..., "exchanges": [...]} and exchanges are the HTTP requests (with what came
// back), WebSocket frames and subscribe statuses of the check (recorded only for failing checks). Each check is
// independent: one failing does not stop the others, and every user a check creates is deleted by the last check
// (deletes_every_created_user). The exit code is 0 whenever the JSON was printed; pytest judges the results.

import { randomUUID } from "node:crypto";
import { createClient } from "@supabase/supabase-js";
import WebSocket from "ws";
import { CheckFailed, Inbox, WAIT, expect, failureOf, runChecks, sleep } from "./harness.mjs";

const env = (name) => {
  const value = process.env[name];
  if (!value) throw new Error(`missing environment variable ${name}`);
  return value;
};

const API_URL = env("API_URL");
const AUTH_URL = env("AUTH_URL");
const ANON_KEY = env("ANON_KEY");
const SERVICE_KEY = env("SERVICE_KEY");
const WORLD = JSON.parse(env("WORLD"));
const TAG = env("TAG");
const MEMBER = JSON.parse(env("MEMBER"));
const { ids } = WORLD;

const QUIET = 600; // how long a check listens for something that must NOT arrive
const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/;


// ---------------------------------------------------------------------------------------------------------------
// What the current check put on the wire: HTTP exchanges (kept whole, for assertions), WebSocket frames, statuses.

let trace = [];
let traceStart = Date.now();

function note(entry) {
  trace.push({ ms: Date.now() - traceStart, ...entry });
  return trace.at(-1);
}

function decodeJwt(jwt) {
  const [header, payload] = String(jwt).split(".");
  const part = (text) => JSON.parse(Buffer.from(text, "base64url").toString("utf8"));
  return { header: part(header), payload: part(payload) };
}

// JWTs are long and unreadable in a report: show whose they are instead.
function shorten(text) {
  return String(text).replace(/eyJ[\w-]+\.[\w-]+\.[\w-]*/g, (jwt) => {
    try {
      const { header, payload } = decodeJwt(jwt);
      return `<jwt ${header.alg} role=${payload.role} sub=${payload.sub ?? "-"} sid=${payload.session_id ?? "-"}>`;
    } catch {
      return "<jwt?>";
    }
  });
}

function clip(text, max = 2000) {
  return text.length > max ? `${text.slice(0, max)}...(${text.length} chars)` : text;
}

function headersObject(headers) {
  const out = {};
  new Headers(headers || {}).forEach((value, key) => {
    out[key] = value;
  });
  return out;
}

const realFetch = globalThis.fetch;
globalThis.fetch = async (input, init = {}) => {
  const request = input instanceof Request ? input : null;
  const exchange = note({
    dir: "http",
    method: init.method || request?.method || "GET",
    url: String(request ? request.url : input),
    headers: headersObject(init.headers || request?.headers),
    body: typeof init.body === "string" ? init.body : init.body == null ? null : "<bytes>",
  });
  const response = await realFetch(input, init);
  exchange.status = response.status;
  exchange.response_headers = headersObject(response.headers);
  try {
    exchange.response_body = await response.clone().text();
  } catch (err) {
    exchange.response_body = `<unreadable: ${err}>`;
  }
  return response;
};

// The exchanges so far whose method and URL path match (path relative to API_URL, without the query).
function exchanges(method, path, from = 0) {
  return trace
    .slice(from)
    .filter((e) => e.dir === "http" && e.method === method && new URL(e.url).pathname === path);
}

function lastExchange(method, path, from = 0) {
  const found = exchanges(method, path, from).at(-1);
  expect(found, `a ${method} ${path} was sent`, trace.slice(from).filter((e) => e.dir === "http"));
  return found;
}

function bodyOf(exchange) {
  try {
    return JSON.parse(exchange.response_body);
  } catch {
    return undefined;
  }
}

// The `ws` class the client is given as its transport, recording every text frame (binary ones by kind).
function tappedTransport(label) {
  return class TappedWebSocket extends WebSocket {
    constructor(address, protocols, options) {
      super(address, protocols, options);
      note({ client: label, dir: "connect", url: address });
      this.on("message", (data, isBinary) => note({ client: label, dir: "in", ...frame(data, isBinary) }));
      this.on("close", (code, reason) => note({ client: label, dir: "closed", code, reason: String(reason) }));
    }

    send(data, ...rest) {
      note({ client: label, dir: "out", ...frame(data, typeof data !== "string") });
      return super.send(data, ...rest);
    }
  };
}

function frame(data, isBinary) {
  const bytes = Buffer.from(data);
  if (isBinary) return { binary: { kind: bytes[0], bytes: bytes.length } };
  return { text: bytes.toString("utf8") };
}

function framesOf(label, dir) {
  return trace.filter((f) => f.client === label && f.dir === dir && f.text !== undefined);
}

function parsedText(f) {
  try {
    return JSON.parse(f.text);
  } catch {
    return undefined;
  }
}

// A failing check's record, readable: JWTs named, bodies clipped, only the headers that matter here.
const SHOWN_HEADERS = [
  "authorization",
  "apikey",
  "x-supabase-api-version",
  "x-sb-error-code",
  "x-total-count",
  "link",
  "cache-control",
];

function presentable(entry) {
  const pick = (headers) =>
    Object.fromEntries(
      Object.entries(headers || {})
        .filter(([k]) => SHOWN_HEADERS.includes(k))
        .map(([k, v]) => [k, shorten(v)]),
    );
  const out = { ...entry };
  if (out.url) out.url = shorten(out.url);
  if (out.headers) out.headers = pick(out.headers);
  if (out.response_headers) out.response_headers = pick(out.response_headers);
  for (const key of ["body", "response_body", "text"]) {
    if (typeof out[key] === "string") out[key] = clip(shorten(out[key]));
  }
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// Clients, as an integrator following the Supabase docs would create them on Node 20.

let openClients = [];

function newClient(label, key = ANON_KEY, extra = {}) {
  const supabase = createClient(API_URL, key, {
    auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
    realtime: { transport: tappedTransport(label), timeout: WAIT },
    ...extra,
  });
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

// The admin client of the Supabase docs ("auth: {persistSession: false}"), with the service key.
const admin = createClient(API_URL, SERVICE_KEY, {
  auth: { persistSession: false, autoRefreshToken: false, detectSessionInUrl: false },
  realtime: { transport: WebSocket },
});

const email = (name) => `js-${TAG}-${name}@example.com`;
const password = () => `pw-${randomUUID()}`;
const created = new Set(); // every user a check created; deletes_every_created_user removes them

async function signUp(client, name, data = undefined) {
  const pw = password();
  const result = await client.auth.signUp({ email: email(name), password: pw, options: data ? { data } : {} });
  if (result.data?.user?.id) created.add(result.data.user.id);
  expect(result.error === null, `signUp ${email(name)}: expected no error`, result);
  expect(result.data.session && result.data.user, "signUp returns a session and a user (autoconfirm)", result);
  return { email: email(name), password: pw, session: result.data.session, user: result.data.user };
}

async function signIn(client, who) {
  const result = await client.auth.signInWithPassword({ email: who.email, password: who.password });
  expect(result.error === null, `signInWithPassword ${who.email}: expected no error`, result);
  expect(result.data.session && result.data.user, "signInWithPassword returns a session and a user", result);
  return result.data.session;
}

// An auth-js error: its class name, HTTP status and GoTrue error code (undefined to skip a field).
function expectAuthError(result, { name, status, code }, what) {
  const error = result.error;
  expect(error, `${what}: expected an error`, result);
  const got = { name: error.name, status: error.status, code: error.code, message: error.message };
  if (name !== undefined) expect(error.name === name, `${what}: expected ${name}, got ${error.name}`, got);
  if (status !== undefined) expect(error.status === status, `${what}: expected status ${status}`, got);
  if (code !== undefined) expect(error.code === code, `${what}: expected code ${code}, got ${error.code}`, got);
  return got;
}

// What the server itself answered (the client may turn it into another error class): status and GoTrue code.
function expectWire(exchange, status, code, what) {
  const body = bodyOf(exchange);
  const got = { status: exchange.status, body, x_sb_error_code: exchange.response_headers?.["x-sb-error-code"] };
  expect(exchange.status === status, `${what}: the server answered ${exchange.status}, expected ${status}`, got);
  if (code !== undefined) {
    expect(body?.code === code, `${what}: expected {"code": "${code}", ...} in the body`, got);
    expect(got.x_sb_error_code === code, `${what}: expected the x-sb-error-code header ${code}`, got);
  }
  return got;
}

function wireOf(exchange) {
  const body = bodyOf(exchange);
  return { status: exchange.status, code: body?.code, message: body?.message };
}

const same = (a, b) => JSON.stringify(a) === JSON.stringify(b);

function subscribe(channel, label) {
  const statuses = new Inbox(`${label} ${channel.topic} subscribe statuses`);
  channel.subscribe((status, err) => {
    const entry = { status, message: err ? err.message : undefined };
    note({ client: label, dir: "status", topic: channel.topic, ...entry });
    statuses.push(entry);
  }, WAIT);
  return statuses;
}

// ---------------------------------------------------------------------------------------------------------------
// The checks. Each returns something small to report on success, or throws.

const checks = {};

checks.sign_up_es256_session_and_get_claims_via_jwks = async () => {
  const c = newClient("A");
  const events = [];
  c.auth.onAuthStateChange((event) => events.push(event));
  const who = await signUp(c, "signup", { plan: "free" });
  const { session, user } = who;
  expect(UUID.test(user.id) && user.email === who.email, "the user: a uuid id and the email", user);
  expect(user.aud === "authenticated" && user.role === "authenticated", "user aud and role authenticated", user);
  expect(user.user_metadata?.plan === "free", "options.data became user_metadata", user);
  expect(user.app_metadata?.provider === "email", "app_metadata.provider email", user);
  expect(typeof user.email_confirmed_at === "string", "autoconfirm: email_confirmed_at set", user);
  expect(
    session.token_type === "bearer" &&
      session.expires_in > 90 &&
      Number.isInteger(session.expires_at) &&
      typeof session.refresh_token === "string" &&
      session.refresh_token.length >= 12,
    "the session: bearer, expires_in > 90 s, expires_at, a refresh token",
    { ...session, access_token: shorten(session.access_token), user: undefined },
  );
  expect(session.user?.id === user.id, "session.user is the user", session.user);
  expect(events.includes("SIGNED_IN"), "onAuthStateChange fired SIGNED_IN", events);
  const { header, payload } = decodeJwt(session.access_token);
  expect(header.alg === "ES256", `the access token is ES256, got ${header.alg}`, header);
  expect(typeof header.kid === "string" && header.kid.length > 0, "the access token's header has a kid", header);
  const stored = await c.auth.getSession();
  expect(stored.data.session?.access_token === session.access_token, "getSession holds the new session", stored);

  // getClaims: ES256 with a kid, so the client verifies with WebCrypto against the JWKS (no /user round trip).
  const before = trace.length;
  const claims = await c.auth.getClaims();
  expect(claims.error === null && claims.data?.claims, "getClaims: expected claims and no error", claims);
  const cl = claims.data.claims;
  expect(cl.sub === user.id, "claims.sub is the user id", cl);
  expect(cl.role === "authenticated" && cl.aud === "authenticated", "claims role and aud authenticated", cl);
  expect(UUID.test(cl.session_id || ""), "claims.session_id is a uuid", cl);
  expect(cl.email === who.email, "claims.email", cl);
  expect(cl.iss === AUTH_URL, `claims.iss is ${AUTH_URL}`, cl);
  expect(cl.exp - cl.iat === session.expires_in, "exp - iat is expires_in", cl);
  expect(claims.data.header?.kid === header.kid, "getClaims reports the token's header", claims.data.header);
  const jwks = lastExchange("GET", "/auth/v1/.well-known/jwks.json", before);
  expect(jwks.status === 200, "GET /auth/v1/.well-known/jwks.json: 200", presentable(jwks));
  const key = bodyOf(jwks)?.keys?.find((k) => k.kid === header.kid);
  expect(
    key &&
      key.kty === "EC" &&
      key.crv === "P-256" &&
      key.alg === "ES256" &&
      key.key_ops?.includes("verify") &&
      key.d === undefined,
    "the JWKS lists the token's kid as a public P-256 key for verify",
    bodyOf(jwks),
  );
  expect(exchanges("GET", "/auth/v1/user", before).length === 0, "getClaims did not fall back to GET /user", trace);
  expect(payload.sub === cl.sub, "the decoded payload is what getClaims returned", payload);

  // Refusals: a token whose payload was changed does not verify; the same email cannot sign up twice.
  const forgedPayload = Buffer.from(JSON.stringify({ ...payload, role: "service_role" })).toString("base64url");
  const [h, , s] = session.access_token.split(".");
  const forged = await c.auth.getClaims(`${h}.${forgedPayload}.${s}`);
  expect(forged.error && !forged.data, "getClaims of a forged token: an error, no claims", forged);
  const again = await newClient("B").auth.signUp({ email: who.email, password: password() });
  const duplicate = expectAuthError(again, { status: 422, code: "user_already_exists" }, "signUp with a used email");
  return { header, claims: { ...cl, user_metadata: undefined }, forged: forged.error.message, duplicate };
};

// GoTrue answers a token that does not verify with 403 bad_jwt; Busymate answers 401 bad_jwt, so every surface
// refuses a bad token with the same status (docs/auth.md). supabase-js treats both as an AuthApiError.
checks.get_user_with_a_forged_token_is_401_bad_jwt = async () => {
  const c = newClient("A");
  const who = await signUp(c, "forged");
  const { payload } = decodeJwt(who.session.access_token);
  const [h, , s] = who.session.access_token.split(".");
  const changed = Buffer.from(JSON.stringify({ ...payload, email: "x@example.com" })).toString("base64url");
  const forged = `${h}.${changed}.${s}`;
  const before = trace.length;
  const result = await c.auth.getUser(forged);
  const error = expectAuthError(result, { name: "AuthApiError" }, "getUser with a forged token");
  const wire = expectWire(lastExchange("GET", "/auth/v1/user", before), 401, "bad_jwt", "GET /user, forged token");
  return { error, wire };
};

checks.sign_in_with_password_and_invalid_credentials = async () => {
  const who = await signUp(newClient("A"), "signin");
  const c = newClient("B");
  const events = [];
  c.auth.onAuthStateChange((event) => events.push(event));
  const session = await signIn(c, who);
  expect(session.user.id === who.user.id && session.user.email === who.email, "the signed-in user", session.user);
  expect(typeof session.user.last_sign_in_at === "string", "user.last_sign_in_at is set", session.user);
  const { payload } = decodeJwt(session.access_token);
  expect(payload.session_id !== decodeJwt(who.session.access_token).payload.session_id, "a new session", payload);
  expect(
    Array.isArray(payload.amr) && payload.amr[0]?.method === "password" && payload.aal === "aal1",
    "amr [{method: password}] and aal1",
    payload,
  );
  expect(events.includes("SIGNED_IN"), "SIGNED_IN fired", events);

  const before = trace.length;
  const wrong = await newClient("C").auth.signInWithPassword({ email: who.email, password: "not-the-password" });
  const refused = expectAuthError(
    wrong,
    { name: "AuthApiError", status: 400, code: "invalid_credentials" },
    "signInWithPassword with a wrong password",
  );
  expect(!wrong.data.session && !wrong.data.user, "no session and no user on a wrong password", wrong.data);
  expect(refused.message === "Invalid login credentials", "message Invalid login credentials", refused);
  expectWire(lastExchange("POST", "/auth/v1/token", before), 400, "invalid_credentials", "POST /token");
  const unknown = await newClient("D").auth.signInWithPassword({ email: email("nobody"), password: "whatever1" });
  expectAuthError(unknown, { status: 400, code: "invalid_credentials" }, "signInWithPassword with an unknown email");
  return { refused };
};

checks.refresh_session_rotates_and_fires_token_refreshed = async () => {
  const c = newClient("A");
  const who = await signUp(c, "refresh");
  const events = [];
  c.auth.onAuthStateChange((event, session) => events.push({ event, refresh_token: session?.refresh_token }));
  const first = who.session;
  const before = trace.length;
  const result = await c.auth.refreshSession();
  expect(result.error === null && result.data.session, "refreshSession: a new session", result);
  const second = result.data.session;
  expect(second.refresh_token !== first.refresh_token, "the refresh token is rotated", {
    old: first.refresh_token,
    new: second.refresh_token,
  });
  expect(second.access_token !== first.access_token, "a new access token", second);
  const a = decodeJwt(first.access_token).payload;
  const b = decodeJwt(second.access_token).payload;
  expect(b.session_id === a.session_id && b.sub === a.sub, "same session and user", { a, b });
  expect(decodeJwt(second.access_token).header.alg === "ES256", "still ES256", decodeJwt(second.access_token).header);
  const call = lastExchange("POST", "/auth/v1/token", before);
  expect(call.url.includes("grant_type=refresh_token"), "POST /token?grant_type=refresh_token", presentable(call));
  const fired = events.find((e) => e.event === "TOKEN_REFRESHED");
  expect(fired && fired.refresh_token === second.refresh_token, "TOKEN_REFRESHED with the new session", events);
  const stored = await c.auth.getSession();
  expect(stored.data.session?.refresh_token === second.refresh_token, "getSession holds the rotated session", stored);
  // The new refresh token works in its turn.
  const third = await c.auth.refreshSession();
  expect(third.error === null && third.data.session.refresh_token !== second.refresh_token, "a second rotation", third);

  // Refusal: a refresh token the server never issued.
  const bogus = await newClient("B").auth.refreshSession({ refresh_token: "abcdefghijkl" });
  const refused = expectAuthError(
    bogus,
    { name: "AuthApiError", status: 400, code: "refresh_token_not_found" },
    "refreshSession with an unknown refresh token",
  );
  return { events: events.map((e) => e.event), refused };
};

checks.get_user_update_user_metadata_and_password = async () => {
  const c = newClient("A");
  const who = await signUp(c, "update", { plan: "free" });
  const events = [];
  c.auth.onAuthStateChange((event) => events.push(event));
  const got = await c.auth.getUser();
  expect(got.error === null && got.data.user?.id === who.user.id, "getUser returns the user", got);
  expect(got.data.user.email === who.email && got.data.user.user_metadata?.plan === "free", "email and data", got);
  expect(Array.isArray(got.data.user.identities), "getUser's user has identities", got.data.user);

  const one = await c.auth.updateUser({ data: { theme: "dark" } });
  expect(one.error === null, "updateUser({data: {theme}})", one);
  expect(one.data.user.user_metadata?.theme === "dark", "theme set", one.data.user);
  expect(one.data.user.user_metadata?.plan === "free", "the earlier key kept (merge, not replace)", one.data.user);
  const two = await c.auth.updateUser({ data: { lang: "fr", theme: "light" } });
  expect(two.error === null, "updateUser({data: {lang, theme}})", two);
  const meta = two.data.user.user_metadata;
  expect(meta.plan === "free" && meta.theme === "light" && meta.lang === "fr", "metadata merged", meta);
  expect(events.includes("USER_UPDATED"), "USER_UPDATED fired", events);
  const again = await c.auth.getUser();
  expect(same(again.data.user?.user_metadata, meta), "getUser sees the merged metadata", again);
  const session = (await c.auth.getSession()).data.session;
  expect(session?.user?.user_metadata?.lang === "fr", "the stored session's user was updated", session?.user);

  // Refusal: too short a password is weak_password (422), and the old password still works after it.
  const weak = await c.auth.updateUser({ password: "123" });
  const refused = expectAuthError(weak, { status: 422, code: "weak_password" }, "updateUser with a 3-char password");
  const changed = password();
  const updated = await c.auth.updateUser({ password: changed });
  expect(updated.error === null, "updateUser({password})", updated);
  const old = await newClient("B").auth.signInWithPassword({ email: who.email, password: who.password });
  expectAuthError(old, { status: 400, code: "invalid_credentials" }, "sign in with the old password");
  const fresh = await signIn(newClient("C"), { email: who.email, password: changed });
  expect(fresh.user.id === who.user.id, "sign in with the new password", fresh.user);
  return { metadata: meta, weak: refused };
};

// GoTrue's password change ends sessions (models.User.UpdatePassword): PUT /user keeps the caller's session and
// ends the others (LogoutAllExceptMe); the admin's PUT /admin/users/{id} ends them all (Logout).
checks.password_change_ends_the_other_sessions = async () => {
  const c = newClient("A");
  const who = await signUp(c, "pwother");
  const other = newClient("B");
  await signIn(other, who);
  const changed = password();
  const updated = await c.auth.updateUser({ password: changed });
  expect(updated.error === null, "updateUser({password})", updated);
  const mine = await c.auth.getUser();
  expect(mine.error === null, "the session that changed the password still works", mine);
  const found = {};
  let before = trace.length;
  const theirs = await other.auth.getUser();
  found.put_user = { error: theirs.error?.name ?? null, ...wireOf(lastExchange("GET", "/auth/v1/user", before)) };
  // The admin sets a password: every session of the user ends, the caller's included.
  const byAdmin = await admin.auth.admin.updateUserById(who.user.id, { password: password() });
  expect(byAdmin.error === null, "admin.updateUserById({password})", byAdmin);
  before = trace.length;
  const after = await c.auth.getUser();
  found.admin = { error: after.error?.name ?? null, ...wireOf(lastExchange("GET", "/auth/v1/user", before)) };
  const ended = (f) => f.error === "AuthSessionMissingError" && f.status === 403 && f.code === "session_not_found";
  expect(
    ended(found.put_user) && ended(found.admin),
    "GET /user on an ended session: 403 session_not_found (AuthSessionMissingError), after PUT /user {password} " +
      "for the other session and after the admin's password update for every session",
    found,
  );
  return found;
};

checks.sign_out_local_keeps_other_session_global_ends_all = async () => {
  const a = newClient("A");
  const who = await signUp(a, "signout");
  const b = newClient("B");
  await signIn(b, who);
  const aToken = (await a.auth.getSession()).data.session.access_token;
  const aEvents = [];
  a.auth.onAuthStateChange((event) => aEvents.push(event));

  let before = trace.length;
  const local = await a.auth.signOut({ scope: "local" });
  expect(local.error === null, "signOut({scope: 'local'})", local);
  const logout = lastExchange("POST", "/auth/v1/logout", before);
  expect(logout.url.endsWith("?scope=local") && logout.status === 204, "POST /logout?scope=local: 204", logout);
  expect((await a.auth.getSession()).data.session === null, "A has no session any more", aEvents);
  expect(aEvents.includes("SIGNED_OUT"), "SIGNED_OUT fired on A", aEvents);
  const bUser = await b.auth.getUser();
  expect(bUser.error === null && bUser.data.user?.id === who.user.id, "B's session still works", bUser);
  before = trace.length;
  const aOld = await newClient("A2").auth.getUser(aToken);
  expectAuthError(aOld, { name: "AuthSessionMissingError" }, "getUser with A's token after the local sign-out");
  expectWire(lastExchange("GET", "/auth/v1/user", before), 403, "session_not_found", "GET /user with A's token");

  // A third session, then a global sign-out from B ends it too.
  const c = newClient("C");
  const cSession = await signIn(c, who);
  before = trace.length;
  const global = await b.auth.signOut();
  expect(global.error === null, "signOut() (global)", global);
  const g = lastExchange("POST", "/auth/v1/logout", before);
  expect(g.url.endsWith("?scope=global") && g.status === 204, "POST /logout?scope=global: 204", presentable(g));
  expect((await b.auth.getSession()).data.session === null, "B has no session any more", null);
  before = trace.length;
  const cUser = await c.auth.getUser();
  const error = expectAuthError(cUser, { name: "AuthSessionMissingError" }, "C's getUser after B's global sign-out");
  const wire = expectWire(lastExchange("GET", "/auth/v1/user", before), 403, "session_not_found", "GET /user as C");
  expect((await c.auth.getSession()).data.session === null, "supabase-js cleared C's session", null);
  const refresh = await newClient("C2").auth.refreshSession({ refresh_token: cSession.refresh_token });
  expectAuthError(refresh, { status: 400, code: "refresh_token_not_found" }, "C's refresh token after the sign-out");
  return { error, wire };
};

checks.admin_create_list_get_update_delete = async () => {
  const mail = email("admin-made");
  const pw = password();
  const made = await admin.auth.admin.createUser({
    email: mail,
    password: pw,
    email_confirm: true,
    user_metadata: { team: "qa" },
  });
  if (made.data?.user?.id) created.add(made.data.user.id);
  expect(made.error === null && made.data.user, "admin.createUser", made);
  const user = made.data.user;
  expect(UUID.test(user.id) && user.email === mail, "the created user", user);
  expect(user.user_metadata?.team === "qa", "user_metadata", user);
  expect(typeof user.email_confirmed_at === "string", "email_confirm: true confirms", user);
  expect(user.app_metadata?.provider === "email", "app_metadata.provider email", user);
  const duplicate = await admin.auth.admin.createUser({ email: mail, password: pw, email_confirm: true });
  expectAuthError(duplicate, { status: 422, code: "email_exists" }, "admin.createUser with a used email");
  const session = await signIn(newClient("A"), { email: mail, password: pw });
  expect(session.user.id === user.id, "the admin-made user signs in", session.user);

  // listUsers: supabase-js reads total from X-Total-Count and nextPage/lastPage from the Link header.
  let before = trace.length;
  const all = await admin.auth.admin.listUsers({ page: 1, perPage: 1000 });
  expect(all.error === null && Array.isArray(all.data.users), "listUsers({perPage: 1000})", all);
  const count = all.data.users.length;
  expect(count >= 3, "at least three users exist (the world's and this one)", count);
  expect(all.data.users.some((u) => u.id === user.id), "the new user is listed", count);
  expect(all.data.total === count, `total (X-Total-Count) is ${count}`, { total: all.data.total, count });
  before = trace.length;
  const page1 = await admin.auth.admin.listUsers({ page: 1, perPage: 2 });
  expect(page1.error === null, "listUsers({page: 1, perPage: 2})", page1);
  const call = lastExchange("GET", "/auth/v1/admin/users", before);
  const query = new URL(call.url).searchParams;
  expect(query.get("page") === "1" && query.get("per_page") === "2", "sent ?page=1&per_page=2", call.url);
  const last = Math.ceil(count / 2);
  const link = call.response_headers.link || "";
  const wire = { x_total_count: call.response_headers["x-total-count"], link };
  expect(page1.data.users.length === 2 && page1.data.aud === "authenticated", "two users, aud authenticated", wire);
  expect(page1.data.total === count, `total ${count}`, { total: page1.data.total, ...wire });
  expect(page1.data.nextPage === 2, "nextPage 2", { nextPage: page1.data.nextPage, ...wire });
  expect(/[?&]page=2&per_page=2>; rel="next"/.test(link), 'Link has page=2 rel="next"', wire);
  expect(new RegExp(`[?&]page=${last}&per_page=2>; rel="last"`).test(link), `rel="last" is page ${last}`, wire);
  before = trace.length;
  const end = await admin.auth.admin.listUsers({ page: last, perPage: 2 });
  expect(end.error === null && end.data.users.length === count - 2 * (last - 1), "the last page's users", end.data);
  expect(end.data.nextPage === null, "no nextPage on the last page", {
    nextPage: end.data.nextPage,
    link: lastExchange("GET", "/auth/v1/admin/users", before).response_headers.link,
  });
  const seen = new Set(page1.data.users.map((u) => u.id));
  const page2 = await admin.auth.admin.listUsers({ page: 2, perPage: 2 });
  expect(page2.error === null && page2.data.users.every((u) => !seen.has(u.id)), "page 2 repeats no user", page2);

  const byId = await admin.auth.admin.getUserById(user.id);
  expect(byId.error === null && byId.data.user?.email === mail, "getUserById", byId);
  const missing = await admin.auth.admin.getUserById(randomUUID());
  expectAuthError(missing, { status: 404, code: "user_not_found" }, "getUserById of an unknown id");

  const newPw = password();
  const updated = await admin.auth.admin.updateUserById(user.id, {
    user_metadata: { level: 2 },
    app_metadata: { plan: "pro" },
    password: newPw,
  });
  expect(updated.error === null, "updateUserById", updated);
  const um = updated.data.user.user_metadata;
  expect(um.team === "qa" && um.level === 2, "user_metadata merged", um);
  const am = updated.data.user.app_metadata;
  expect(am.plan === "pro" && am.provider === "email", "app_metadata merged", am);
  const old = await newClient("B").auth.signInWithPassword({ email: mail, password: pw });
  expectAuthError(old, { status: 400, code: "invalid_credentials" }, "sign in with the password before the update");
  await signIn(newClient("C"), { email: mail, password: newPw });

  const deleted = await admin.auth.admin.deleteUser(user.id);
  expect(deleted.error === null, "deleteUser", deleted);
  created.delete(user.id);
  const gone = await admin.auth.admin.getUserById(user.id);
  expectAuthError(gone, { status: 404, code: "user_not_found" }, "getUserById after deleteUser");
  const signInGone = await newClient("D").auth.signInWithPassword({ email: mail, password: newPw });
  expectAuthError(signInGone, { status: 400, code: "invalid_credentials" }, "sign in as the deleted user");
  return { total: count, nextPage: page1.data.nextPage, lastPage: page1.data.lastPage, link };
};

checks.admin_calls_with_the_anon_key_or_a_user_token_are_not_admin = async () => {
  const anon = newClient("anon");
  const results = {};
  let before = trace.length;
  const list = await anon.auth.admin.listUsers();
  results.list = expectAuthError(list, { status: 403, code: "not_admin" }, "listUsers with the anon key");
  expectWire(lastExchange("GET", "/auth/v1/admin/users", before), 403, "not_admin", "GET /admin/users (anon)");
  const make = await anon.auth.admin.createUser({ email: email("anon-made"), password: password() });
  if (make.data?.user?.id) created.add(make.data.user.id);
  results.create = expectAuthError(make, { status: 403, code: "not_admin" }, "createUser with the anon key");
  const get = await anon.auth.admin.getUserById(ids.member);
  results.get = expectAuthError(get, { status: 403, code: "not_admin" }, "getUserById with the anon key");
  const del = await anon.auth.admin.deleteUser(ids.member);
  results.delete = expectAuthError(del, { status: 403, code: "not_admin" }, "deleteUser with the anon key");
  // A signed-in user's own token (global Authorization header) is not an admin either.
  const who = await signUp(newClient("A"), "not-admin");
  const asUser = newClient("user", ANON_KEY, {
    global: { headers: { Authorization: `Bearer ${who.session.access_token}` } },
  });
  before = trace.length;
  const userList = await asUser.auth.admin.listUsers();
  results.user = expectAuthError(userList, { status: 403, code: "not_admin" }, "listUsers with a user token");
  const sent = lastExchange("GET", "/auth/v1/admin/users", before);
  expect(sent.headers.authorization === `Bearer ${who.session.access_token}`, "it carried the user's token", null);
  const still = await admin.auth.admin.getUserById(ids.member);
  expect(still.error === null && still.data.user?.id === ids.member, "the refused delete deleted nothing", still);
  return results;
};

// The session supabase-js got from /auth/v1 is what /rest/v1 and /realtime/v1 see: the member's rows only,
// its workspace's private channel, and not another workspace's.
checks.one_token_everywhere = async () => {
  const c = newClient("member");
  const session = await signIn(c, MEMBER);
  expect(session.user.id === MEMBER.id, "signed in as the member the Python side created", session.user);
  const token = session.access_token;

  // REST: supabase-js sends the session's token; RLS shows w1's devices only.
  let before = trace.length;
  const devices = await c.from("devices").select("uuid,workspace_id");
  expect(devices.error === null && Array.isArray(devices.data), "select devices as the member", devices);
  const rest = lastExchange("GET", "/rest/v1/devices", before);
  expect(rest.headers.authorization === `Bearer ${token}`, "REST carried the session's token", presentable(rest));
  const uuids = devices.data.map((d) => d.uuid);
  expect(uuids.includes(ids.d1) && uuids.includes(ids.d_unpaired), "w1's devices are listed", devices.data);
  expect(!uuids.includes(ids.d2), "w2's device is hidden", devices.data);
  expect(devices.data.every((d) => d.workspace_id === ids.w1), "every row is in w1", devices.data);
  const signedOutClient = newClient("anon");
  const anon = await signedOutClient.from("devices").select("uuid");
  expect(anon.error?.code === "42501" && anon.status === 401, "a client without a session: 42501, 401", anon);

  // Realtime: supabase-js hands the session's token to realtime.setAuth on SIGNED_IN.
  for (let i = 0; i < 40 && c.realtime.accessTokenValue !== token; i++) await sleep(50);
  expect(c.realtime.accessTokenValue === token, "realtime got the session's token", c.realtime.accessTokenValue);
  const topic = `ws:${ids.w1}`;
  const got = new Inbox("member ws:w1");
  const ch = c.channel(topic, { config: { private: true } }).on("broadcast", { event: "INSERT" }, got.push);
  const statuses = subscribe(ch, "member");
  const first = await statuses.waitFor(() => true, "a subscribe status", WAIT + 1000);
  expect(first.status === "SUBSCRIBED", `member joins ${topic}: expected SUBSCRIBED`, first);
  const join = framesOf("member", "out")
    .map(parsedText)
    .find((m) => Array.isArray(m) && m[3] === "phx_join" && m[2] === `realtime:${topic}`);
  expect(join?.[4]?.access_token === token, "the join carried the session's access token", join && shorten(join));

  // Refusal: the other workspace's private channel.
  const other = `ws:${ids.w2}`;
  const refusedStatuses = subscribe(c.channel(other, { config: { private: true } }), "member");
  const refused = await refusedStatuses.waitFor(() => true, "a subscribe status", 7000);
  expect(refused.status === "CHANNEL_ERROR", `member on ${other}: expected CHANNEL_ERROR`, refused);
  const reason = `Unauthorized: You do not have permissions to read from this Channel topic: ${other}`;
  expect(refused.message === reason, `err.message "${reason}"`, refused);

  // Refusal: ws:<workspace> is written by the database only, so the member's own HTTP broadcast is refused.
  let memberSend = null;
  try {
    await c.channel(topic, { config: { private: true } }).httpSend("INSERT", { spoofed: true });
  } catch (err) {
    memberSend = err.message;
  }
  expect(memberSend === "Unauthorized", `the member's private httpSend: 403 Unauthorized, got ${memberSend}`, null);

  // A broadcast the service role stores for ws:<w1> reaches the member's channel.
  const marker = randomUUID();
  const sent = await admin.channel(topic, { config: { private: true } }).httpSend("INSERT", { hello: 1, marker });
  expect(same(sent, { success: true }), "the service role's private httpSend: 202", sent);
  const msg = await got.waitFor((m) => m.payload?.marker === marker, "the service role's broadcast on ws:w1");
  expect(msg.type === "broadcast" && msg.event === "INSERT" && msg.payload.hello === 1, "the message", msg);
  await sleep(QUIET);
  expect(!got.items.some((m) => m.payload?.spoofed), "the refused message was not delivered", got.items);
  expect(ch.state === "joined", `the w1 channel stays joined, state ${ch.state}`, ch.state);
  return { devices: devices.data.length, refused: refused.message, message: msg.payload };
};

// Last: every user the checks created goes, through the admin API, so the other suites' counts hold.
checks.deletes_every_created_user = async () => {
  const left = [];
  for (const id of created) {
    const deleted = await admin.auth.admin.deleteUser(id);
    if (deleted.error) left.push({ id, error: deleted.error.message });
    const gone = await admin.auth.admin.getUserById(id);
    if (gone.error?.code !== "user_not_found") left.push({ id, still: gone.data?.user?.email ?? gone.error });
  }
  expect(left.length === 0, "every created user is deleted (getUserById: user_not_found)", left);
  const again = await admin.auth.admin.deleteUser(randomUUID());
  expectAuthError(again, { status: 404, code: "user_not_found" }, "deleteUser of an unknown id");
  return { deleted: created.size };
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
    outcome = { ok: false, details: failureOf(err) };
  }
  await closeAll();
  if (!outcome.ok) outcome.exchanges = trace.map(presentable);
  trace = [];
  return outcome;
}

runChecks(checks, run);
