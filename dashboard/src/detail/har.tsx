// HAR 1.2 export (issue 17): entries read through supabase-js in chunks, with their bodies (text as text, binary
// as base64), secret headers and cookies redacted unless "include secrets" is ticked, saved with a Blob and an
// <a download>. The traffic toolbar places <HarExportButton> for the current filter; the detail uses it for one.
import type { SupabaseClient } from "@supabase/supabase-js";
import { useState } from "react";
import "./detail.css";
import { useApp } from "../app";
import {
  type EntryMeta,
  type FullEntry,
  type HeaderPair,
  META_COLUMNS,
  REDACTED,
  byteaToBytes,
  bytesToBase64,
  bytesToText,
  fullUrl,
  shownHeaders,
} from "./model";

const CHUNK = 25; // entries per read: bodies are up to the body cap (1 MiB by default) each, as hex

/** Reads entries by id, with their bodies, `CHUNK` at a time; oldest first. Throws the API's message. */
export async function fetchFullEntries(
  supabase: SupabaseClient,
  ids: string[],
  onProgress?: (done: number) => void,
): Promise<FullEntry[]> {
  const out: FullEntry[] = [];
  for (let i = 0; i < ids.length; i += CHUNK) {
    const chunk = ids.slice(i, i + CHUNK);
    const { data, error } = await supabase
      .from("entries")
      .select(`${META_COLUMNS},request_body,response_body`)
      .in("id", chunk);
    if (error) throw new Error(error.message);
    for (const row of (data ?? []) as (EntryMeta & { request_body: unknown; response_body: unknown })[]) {
      out.push({ ...row, request_body: byteaToBytes(row.request_body), response_body: byteaToBytes(row.response_body) });
    }
    onProgress?.(Math.min(ids.length, i + CHUNK));
  }
  out.sort((a, b) => a.captured_at.localeCompare(b.captured_at));
  return out;
}

interface HarNameValue {
  name: string;
  value: string;
}

function pairs(headers: HeaderPair[]): HarNameValue[] {
  return headers.map(([name, value]) => ({ name, value }));
}

function requestCookies(headers: HeaderPair[], includeSecrets: boolean): HarNameValue[] {
  const out: HarNameValue[] = [];
  for (const [n, v] of headers) {
    if (n.toLowerCase() !== "cookie") continue;
    for (const part of v.split(";")) {
      const at = part.indexOf("=");
      if (at <= 0) continue;
      out.push({ name: part.slice(0, at).trim(), value: includeSecrets ? part.slice(at + 1).trim() : REDACTED });
    }
  }
  return out;
}

function responseCookies(headers: HeaderPair[], includeSecrets: boolean): HarNameValue[] {
  const out: HarNameValue[] = [];
  for (const [n, v] of headers) {
    if (n.toLowerCase() !== "set-cookie") continue;
    const first = v.split(";")[0];
    const at = first.indexOf("=");
    if (at <= 0) continue;
    out.push({ name: first.slice(0, at).trim(), value: includeSecrets ? first.slice(at + 1).trim() : REDACTED });
  }
  return out;
}

function queryString(query: string | null): HarNameValue[] {
  if (!query) return [];
  return query.split("&").filter(Boolean).map((part) => {
    const at = part.indexOf("=");
    const decode = (s: string) => {
      try {
        return decodeURIComponent(s.replace(/\+/g, " "));
      } catch {
        return s;
      }
    };
    return at < 0 ? { name: decode(part), value: "" } : { name: decode(part.slice(0, at)), value: decode(part.slice(at + 1)) };
  });
}

function bodyText(bytes: Uint8Array | null): { text?: string; encoding?: string } {
  if (bytes == null || bytes.length === 0) return {};
  const text = bytesToText(bytes);
  return text != null ? { text } : { text: bytesToBase64(bytes), encoding: "base64" };
}

const HTTP_VERSION = (v: string | null) => v || "HTTP/1.1";

/** One HAR 1.2 entry. Times: wait = time to first byte, receive = the rest of the duration. */
export function harEntry(e: FullEntry, includeSecrets: boolean): Record<string, unknown> {
  const duration = Math.max(0, e.duration_ms ?? 0);
  const wait = Math.min(duration, Math.max(0, e.ttfb_ms ?? duration));
  const receive = Math.max(0, duration - wait);
  const requestHeaders = Array.isArray(e.request_headers) ? e.request_headers : [];
  const responseHeaders = Array.isArray(e.response_headers) ? e.response_headers : [];
  const request: Record<string, unknown> = {
    method: e.method,
    url: fullUrl(e),
    httpVersion: HTTP_VERSION(e.http_version),
    cookies: requestCookies(requestHeaders, includeSecrets),
    headers: pairs(shownHeaders(requestHeaders, includeSecrets)),
    queryString: queryString(e.query),
    headersSize: -1,
    bodySize: e.request_body_size ?? -1,
  };
  if (e.request_body != null && e.request_body.length > 0) {
    const body = bodyText(e.request_body);
    request.postData = {
      mimeType: e.request_content_type ?? "",
      params: [],
      text: body.text ?? "",
      ...(body.encoding ? { comment: "text is base64 (binary body)", encoding: body.encoding } : {}),
    };
  }
  const failed = e.status == null || e.status === 0;
  const content: Record<string, unknown> = {
    size: e.response_body_size ?? 0,
    mimeType: e.response_content_type ?? "",
    ...bodyText(e.response_body),
  };
  if (e.response_body_truncated) content.comment = `truncated: ${e.response_body?.length ?? 0} of ${e.response_body_size} bytes stored`;
  const entry: Record<string, unknown> = {
    startedDateTime: new Date(e.captured_at).toISOString(),
    time: wait + receive,
    request,
    response: {
      status: failed ? 0 : e.status,
      statusText: "",
      httpVersion: HTTP_VERSION(e.http_version),
      cookies: responseCookies(responseHeaders, includeSecrets),
      headers: pairs(shownHeaders(responseHeaders, includeSecrets)),
      content,
      redirectURL: responseHeaders.find(([n]) => n.toLowerCase() === "location")?.[1] ?? "",
      headersSize: -1,
      bodySize: failed ? -1 : (e.response_size ?? e.response_body_size ?? -1),
      ...(e.error ? { _error: e.error } : {}),
    },
    cache: {},
    timings: { blocked: -1, dns: -1, connect: -1, ssl: -1, send: 0, wait, receive },
    _busymate: { id: e.id, device_uuid: e.device_uuid, source: e.source },
  };
  if (e.error) entry.comment = `error: ${e.error}`;
  return entry;
}

export function buildHar(entries: FullEntry[], includeSecrets: boolean): Record<string, unknown> {
  return {
    log: {
      version: "1.2",
      creator: { name: "Busymate dashboard", version: "1.0" },
      pages: [],
      entries: entries.map((e) => harEntry(e, includeSecrets)),
      comment: includeSecrets ? "secrets included" : `secret headers and cookies replaced by ${REDACTED}`,
    },
  };
}

/** Saves `text` as a file through a Blob URL and an <a download> (what the browser's download catches). */
export function download(text: string, filename: string, type: string): void {
  const url = URL.createObjectURL(new Blob([text], { type }));
  const a = document.createElement("a");
  a.href = url;
  a.download = filename;
  a.style.display = "none";
  document.body.appendChild(a);
  a.click();
  a.remove();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}

export function harFilename(count: number): string {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-").slice(0, 19);
  return count === 1 ? `busymate-entry-${stamp}.har` : `busymate-${count}-entries-${stamp}.har`;
}

/**
 * A button that exports the entries `entryIds()` names (read when clicked) as a HAR 1.2 file. With
 * `includeSecrets` given, the caller owns the "include secrets" choice; without it, the button brings its own
 * checkbox (testid `<testId>-secrets`).
 */
export function HarExportButton(props: { entryIds: () => string[]; label?: string; testId?: string; includeSecrets?: boolean }) {
  const { supabase } = useApp();
  const testId = props.testId ?? "export-har";
  const [ownSecrets, setOwnSecrets] = useState(false);
  const [progress, setProgress] = useState<string | null>(null);
  const [error, setError] = useState<string | null>(null);
  const includeSecrets = props.includeSecrets ?? ownSecrets;

  const run = async () => {
    const ids = props.entryIds();
    setError(null);
    if (ids.length === 0) {
      setError("No entries to export.");
      return;
    }
    setProgress(`0/${ids.length}`);
    try {
      const entries = await fetchFullEntries(supabase, ids, (done) => setProgress(`${done}/${ids.length}`));
      download(JSON.stringify(buildHar(entries, includeSecrets), null, 2), harFilename(entries.length), "application/json");
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setProgress(null);
    }
  };

  return (
    <span className="har-export">
      <button type="button" data-testid={testId} onClick={() => void run()} disabled={progress != null}
        title={includeSecrets ? "HAR 1.2, secrets included" : "HAR 1.2, secret headers and cookies redacted"}>
        {progress != null ? `Exporting ${progress}…` : (props.label ?? "Export HAR")}
      </button>
      {props.includeSecrets === undefined && (
        <label className="har-secrets">
          <input type="checkbox" data-testid={`${testId}-secrets`} checked={ownSecrets} onChange={(e) => setOwnSecrets(e.target.checked)} />
          include secrets
        </label>
      )}
      {error && (
        <span className="error" role="alert" data-testid={`${testId}-error`}>
          {error}
        </span>
      )}
    </span>
  );
}
