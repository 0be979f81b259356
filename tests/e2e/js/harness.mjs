// What rest.mjs, realtime.mjs and auth.mjs share: assertions that say what came back, HS256 signing, waiting
// for what the server sends (Inbox), and the main loop that runs each named check once and prints one JSON object
// with every result.

import { createHmac } from "node:crypto";
import { readFileSync } from "node:fs";

export const WAIT = 5000; // how long a check waits for anything the server should send

export const sleep = (ms) => new Promise((resolve) => setTimeout(resolve, ms));

export const ONLY = (process.env.ONLY || "").split(",").filter(Boolean);

export class CheckFailed extends Error {
  constructor(message, got) {
    super(message);
    this.got = got;
  }
}

export function expect(condition, message, got) {
  if (!condition) throw new CheckFailed(message, got);
}

// What a thrown error becomes in a result.
export function failureOf(err) {
  return err instanceof CheckFailed ? { message: err.message, got: err.got } : { message: String(err?.stack || err) };
}

function base64url(value) {
  return Buffer.from(typeof value === "string" ? value : JSON.stringify(value)).toString("base64url");
}

export function signHs256(claims, secret) {
  const head = `${base64url({ alg: "HS256", typ: "JWT" })}.${base64url(claims)}`;
  return `${head}.${createHmac("sha256", secret).update(head).digest("base64url")}`;
}

// Run every check (or those named in ONLY) through `run(name, check)` and print the results; exit 1 on a crash.
export function runChecks(checks, run) {
  const main = async () => {
    const pkg = JSON.parse(readFileSync(new URL("./node_modules/@supabase/supabase-js/package.json", import.meta.url)));
    const results = {};
    for (const [name, check] of Object.entries(checks)) {
      if (ONLY.length && !ONLY.includes(name)) continue;
      results[name] = await run(name, check);
    }
    process.stdout.write(`${JSON.stringify({ node: process.version, supabase_js: pkg.version, checks: results })}\n`);
  };
  main().then(
    () => process.exit(0),
    (err) => {
      process.stderr.write(`${err?.stack || err}\n`);
      process.exit(1);
    },
  );
}

// A list of what arrived on a binding, with a wait for the first item that matches.
export class Inbox {
  constructor(name) {
    this.name = name;
    this.items = [];
    this.waiters = [];
    this.push = (item) => {
      this.items.push(item);
      for (const waiter of [...this.waiters]) {
        if (waiter.match(item)) waiter.resolve(item);
      }
    };
  }

  waitFor(match, what, timeout = WAIT) {
    const found = this.items.find(match);
    if (found) return Promise.resolve(found);
    return new Promise((resolve, reject) => {
      const waiter = {
        match,
        resolve: (item) => {
          clearTimeout(timer);
          this.waiters = this.waiters.filter((w) => w !== waiter);
          resolve(item);
        },
      };
      const timer = setTimeout(() => {
        this.waiters = this.waiters.filter((w) => w !== waiter);
        reject(new CheckFailed(`${this.name}: nothing within ${timeout} ms: ${what}`, { received: this.items }));
      }, timeout);
      this.waiters.push(waiter);
    });
  }

  count(match) {
    return this.items.filter(match).length;
  }
}
