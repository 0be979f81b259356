// One captured entry as the detail reads it, and what is computed from it: bodies decoded from PostgREST's bytea
// (a "\x<hex>" string), the full URL, redaction of secret headers, and the cURL / fetch copies.

export type HeaderPair = [string, string];

/** The columns the detail reads first: everything but the two bodies (fetched on demand). */
export const META_COLUMNS =
  "id,workspace_id,device_uuid,source,captured_at,method,scheme,host,port,path,query,http_version,status," +
  "request_content_type,response_content_type,request_size,response_size,duration_ms,ttfb_ms,error," +
  "request_headers,response_headers,request_body_size,response_body_size,request_body_truncated," +
  "response_body_truncated";

export interface EntryMeta {
  id: string;
  workspace_id: string;
  device_uuid: string;
  source: string;
  captured_at: string;
  method: string;
  scheme: string;
  host: string;
  port: number | null;
  path: string;
  query: string | null;
  http_version: string | null;
  status: number | null;
  request_content_type: string | null;
  response_content_type: string | null;
  request_size: number | null;
  response_size: number | null;
  duration_ms: number | null;
  ttfb_ms: number | null;
  error: string | null;
  request_headers: HeaderPair[];
  response_headers: HeaderPair[];
  request_body_size: number;
  response_body_size: number;
  request_body_truncated: boolean;
  response_body_truncated: boolean;
}

/** An entry with its bodies (already decoded to bytes; null when none was stored). */
export interface FullEntry extends EntryMeta {
  request_body: Uint8Array | null;
  response_body: Uint8Array | null;
}

export type Side = "request" | "response";

export const UUID_RE = /^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/i;

/** Bytes of a bytea as PostgREST answers it in JSON: "\x" then hex. (Base64 is accepted too, just in case.) */
export function byteaToBytes(value: unknown): Uint8Array | null {
  if (value == null) return null;
  if (typeof value !== "string") return null;
  if (value.startsWith("\\x")) {
    const hex = value.slice(2);
    const out = new Uint8Array(hex.length >> 1);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(hex.substr(i * 2, 2), 16);
    return out;
  }
  const raw = atob(value);
  const out = new Uint8Array(raw.length);
  for (let i = 0; i < raw.length; i++) out[i] = raw.charCodeAt(i);
  return out;
}

/** The bytes as UTF-8 text, or null when they are not valid UTF-8 or carry control bytes (binary). */
export function bytesToText(bytes: Uint8Array): string | null {
  let text: string;
  try {
    text = new TextDecoder("utf-8", { fatal: true }).decode(bytes);
  } catch {
    return null;
  }
  // NUL and most C0 controls mean binary; tab, newline, carriage return and form feed are text.
  for (let i = 0; i < Math.min(text.length, 65536); i++) {
    const c = text.charCodeAt(i);
    if (c < 32 && c !== 9 && c !== 10 && c !== 13 && c !== 12 && c !== 27) return null;
  }
  return text;
}

export function bytesToBase64(bytes: Uint8Array): string {
  let raw = "";
  const step = 0x8000;
  for (let i = 0; i < bytes.length; i += step) raw += String.fromCharCode(...bytes.subarray(i, i + step));
  return btoa(raw);
}

export function fullUrl(e: Pick<EntryMeta, "scheme" | "host" | "port" | "path" | "query">): string {
  const defaultPort = e.scheme === "https" || e.scheme === "wss" ? 443 : 80;
  const host = e.host.includes(":") && !e.host.startsWith("[") ? `[${e.host}]` : e.host;
  const port = e.port != null && e.port !== defaultPort ? `:${e.port}` : "";
  return `${e.scheme}://${host}${port}${e.path}${e.query ? `?${e.query}` : ""}`;
}

export const REDACTED = "<redacted>";

/** Headers whose value is a credential: what "include secrets" governs (as the database's inspect_requests). */
export function isSecretHeader(name: string): boolean {
  const n = name.toLowerCase();
  if (["authorization", "proxy-authorization", "cookie", "set-cookie", "x-api-key", "api-key"].includes(n)) return true;
  return /token|secret|apikey|api-key|api_key|session|password/.test(n);
}

export function shownHeaders(headers: HeaderPair[] | null | undefined, includeSecrets: boolean): HeaderPair[] {
  const list = Array.isArray(headers) ? headers : [];
  return includeSecrets ? list : list.map(([n, v]) => [n, isSecretHeader(n) ? REDACTED : v]);
}

export function headerValue(headers: HeaderPair[], name: string): string | null {
  const n = name.toLowerCase();
  for (const [k, v] of headers) if (k.toLowerCase() === n) return v;
  return null;
}

// Headers a copy leaves out: HTTP/2 pseudo-headers and what the client computes itself.
function copiedHeaders(headers: HeaderPair[]): HeaderPair[] {
  return headers.filter(([n]) => !n.startsWith(":") && !["content-length", "host", "connection"].includes(n.toLowerCase()));
}

function shellQuote(text: string): string {
  return `'${text.replace(/'/g, `'\\''`)}'`;
}

// A printf format that writes the bytes exactly (octal escapes, which POSIX printf knows; NUL included, which no
// shell argument can carry): a body that is not text is piped into curl's --data-binary @-.
function printfBytes(bytes: Uint8Array): string {
  let out = "printf '";
  for (const b of bytes) {
    if ((b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a)) out += String.fromCharCode(b);
    else out += `\\${b.toString(8).padStart(3, "0")}`;
  }
  return `${out}'`;
}

/** The request as a curl command line (bash quoting), secret headers redacted unless includeSecrets. */
export function asCurl(e: FullEntry, includeSecrets: boolean): string {
  const lines = [`curl ${shellQuote(fullUrl(e))}`];
  const headers = copiedHeaders(shownHeaders(e.request_headers, includeSecrets));
  const body = e.request_body;
  const hasBody = body != null && body.length > 0;
  if (e.method !== "GET" || hasBody) lines.push(`-X ${/^[A-Z]+$/.test(e.method) ? e.method : shellQuote(e.method)}`);
  for (const [n, v] of headers) lines.push(`-H ${shellQuote(`${n}: ${v}`)}`);
  const text = hasBody ? bytesToText(body) : null;
  if (hasBody) lines.push(text != null ? `--data-raw ${shellQuote(text)}` : "--data-binary @-");
  if (headerValue(headers, "accept-encoding")) lines.push("--compressed");
  const command = lines.join(" \\\n  ");
  return hasBody && text == null ? `${printfBytes(body)} | \\\n${command}` : command;
}

/** The request as a fetch() call, secret headers redacted unless includeSecrets. */
export function asFetch(e: FullEntry, includeSecrets: boolean): string {
  const headers: Record<string, string> = {};
  for (const [n, v] of copiedHeaders(shownHeaders(e.request_headers, includeSecrets))) {
    headers[n] = n in headers ? `${headers[n]}, ${v}` : v;
  }
  const init: string[] = [`  "method": ${JSON.stringify(e.method)}`, `  "headers": ${JSON.stringify(headers, null, 2).replace(/\n/g, "\n  ")}`];
  const body = e.request_body;
  if (body != null && body.length > 0) {
    const text = bytesToText(body);
    init.push(text != null ? `  "body": ${JSON.stringify(text)}` : `  "body": new Uint8Array([${Array.from(body).join(",")}])`);
  }
  return `fetch(${JSON.stringify(fullUrl(e))}, {\n${init.join(",\n")}\n});`;
}
