// The settings keys Busymate knows (shown as a form with their meaning) and the helpers that split a settings
// object into those keys and the rest (shown as raw JSON), put it back together and compare two of them.

export type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
export type Settings = Record<string, Json>;

export interface KnownKey {
  key: string;
  label: string;
  kind: "choice" | "bytes" | "bool";
  choices?: string[];
  help: string;
}

/** Keys with a meaning in Busymate (docs/proxy.md, supabase/migrations/*settings*, *ingest_entries*). */
export const KNOWN_KEYS: KnownKey[] = [
  {
    key: "connection_type",
    label: "Connection type",
    kind: "choice",
    choices: ["proxy", "vpn", "pac", "cdp"],
    help:
      "How devices send their traffic by default: proxy (an HTTP proxy on the device's port), vpn (the iOS app's " +
      "tunnel), pac (a proxy auto-config file) or cdp (a browser over the Chrome DevTools Protocol). Each device " +
      "also has its own connection type on the Devices page.",
  },
  {
    key: "body_cap_bytes",
    label: "Body size cap (bytes)",
    kind: "bytes",
    help:
      "Request and response bodies are stored up to this many bytes; the rest is counted and the entry is marked " +
      "truncated. Not set: 1 MiB (1048576). The proxy reads it when it starts; ingest_entries applies it to every " +
      "batch.",
  },
  {
    key: "capture_bodies",
    label: "Capture bodies",
    kind: "bool",
    help:
      "Whether devices keep request and response bodies at all (the iOS app's switch; Busymate's own proxy does " +
      "not read it and always keeps bodies up to the cap).",
  },
];

export const KNOWN = new Set(KNOWN_KEYS.map((k) => k.key));

/** Largest cap ingest_entries accepts (it reads the value only when it has at most 9 digits). */
export const MAX_CAP = 999_999_999;

/** The settings without the known keys. */
export function otherKeys(settings: Settings): Settings {
  const rest: Settings = {};
  for (const [k, v] of Object.entries(settings)) if (!KNOWN.has(k)) rest[k] = v;
  return rest;
}

/** Form text of a known key's value ("" when not set). */
export function fieldText(known: KnownKey, value: Json | undefined): string {
  if (value === undefined) return "";
  if (known.kind === "bool") return value === true ? "true" : value === false ? "false" : JSON.stringify(value);
  return typeof value === "string" ? value : JSON.stringify(value);
}

/** A form's fields (text per known key) and raw JSON text back into one settings object, or an error. */
export function compose(fields: Record<string, string>, rawText: string): { value: Settings } | { error: string } {
  let rest: unknown;
  try {
    rest = rawText.trim() === "" ? {} : JSON.parse(rawText);
  } catch (err) {
    return { error: `The other settings are not valid JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (typeof rest !== "object" || rest === null || Array.isArray(rest)) {
    return { error: "The other settings must be a JSON object ({ … })." };
  }
  const result: Settings = {};
  for (const [k, v] of Object.entries(rest as Settings)) {
    if (KNOWN.has(k)) return { error: `${k} is set in the form above, not in the JSON.` };
    result[k] = v;
  }
  for (const known of KNOWN_KEYS) {
    const text = (fields[known.key] ?? "").trim();
    if (text === "") continue;
    if (known.kind === "bytes") {
      if (!/^\d{1,9}$/.test(text) || Number(text) < 1 || Number(text) > MAX_CAP) {
        return { error: `${known.label}: a whole number of bytes from 1 to ${MAX_CAP}.` };
      }
      result[known.key] = Number(text);
    } else if (known.kind === "bool") {
      if (text === "true") result[known.key] = true;
      else if (text === "false") result[known.key] = false;
      else return { error: `${known.label}: on or off.` };
    } else {
      result[known.key] = text;
    }
  }
  return { value: result };
}

/** Parses an overrides text: a JSON object, or an error. */
export function parseObject(text: string): { value: Settings } | { error: string } {
  let value: unknown;
  try {
    value = text.trim() === "" ? {} : JSON.parse(text);
  } catch (err) {
    return { error: `Not valid JSON: ${err instanceof Error ? err.message : String(err)}` };
  }
  if (typeof value !== "object" || value === null || Array.isArray(value)) {
    return { error: "The overrides must be a JSON object ({ … })." };
  }
  return { value: value as Settings };
}

/** A stable text of a JSON value (keys sorted), to compare two settings objects. */
export function stable(value: unknown): string {
  if (Array.isArray(value)) return `[${value.map(stable).join(",")}]`;
  if (value && typeof value === "object") {
    const entries = Object.entries(value as Record<string, unknown>).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, v]) => `${JSON.stringify(k)}:${stable(v)}`).join(",")}}`;
  }
  return JSON.stringify(value);
}

export function pretty(value: unknown): string {
  return JSON.stringify(value, null, 2);
}

/** "1.0 MiB" for a byte count. */
export function humanBytes(n: number): string {
  if (n < 1024) return `${n} B`;
  if (n < 1024 * 1024) return `${(n / 1024).toFixed(1)} KiB`;
  if (n < 1024 * 1024 * 1024) return `${(n / 1024 / 1024).toFixed(1)} MiB`;
  return `${(n / 1024 / 1024 / 1024).toFixed(1)} GiB`;
}
