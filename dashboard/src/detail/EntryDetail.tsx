// The detail of one captured entry (issue 17), opened at /?entry=<id>: what was asked and answered (method, URL,
// status, device, time, duration, sizes), both header lists, both bodies (each read only when its tab is opened),
// timings and the error; copy as cURL or fetch, resend (breakpoints:edit), export HAR, with secret headers
// redacted in copies and exports unless "include secrets" is ticked. Escape or × closes it.
import { useCallback, useEffect, useRef, useState } from "react";
import { useLocation } from "wouter";
import { useApp } from "../app";
import { hostQuestion, useBusyBro } from "../busybro/BusyBro";
import { formatDuration, formatSize, statusClass } from "../entries";
import { ErrorNote, Loading } from "../ui";
import { BodyView } from "./BodyView";
import { HarExportButton } from "./har";
import {
  type EntryMeta,
  type FullEntry,
  type HeaderPair,
  META_COLUMNS,
  type Side,
  UUID_RE,
  asCurl,
  asFetch,
  byteaToBytes,
  fullUrl,
} from "./model";
import "./detail.css";

type Tab = "headers" | "request-body" | "response-body" | "timings";
type BodyState = { loading: boolean; error: string | null; bytes?: Uint8Array | null };

interface ResendState {
  phase: "asking" | "requested" | "claimed" | "replayed" | "lapsed" | "error";
  text: string;
  replayId?: string;
}

export function EntryDetail({ entryId, onClose }: { entryId: string; onClose: () => void }) {
  const { supabase, can } = useApp();
  const busybro = useBusyBro();
  const [, navigate] = useLocation();
  const [meta, setMeta] = useState<EntryMeta | null>(null);
  const [state, setState] = useState<"loading" | "ready" | "missing" | "error">("loading");
  const [error, setError] = useState<string | null>(null);
  const [deviceName, setDeviceName] = useState<string | null>(null);
  const [tab, setTab] = useState<Tab>("headers");
  const [bodies, setBodies] = useState<Record<Side, BodyState | undefined>>({ request: undefined, response: undefined });
  const bodyPromises = useRef<Partial<Record<Side, Promise<Uint8Array | null>>>>({});
  const [includeSecrets, setIncludeSecrets] = useState(false);
  const [copied, setCopied] = useState<{ kind: "curl" | "fetch"; text: string; note: string } | null>(null);
  const [resend, setResend] = useState<ResendState | null>(null);
  const alive = useRef(true);
  useEffect(() => {
    alive.current = true;
    return () => {
      alive.current = false;
    };
  }, []);

  // The entry without its bodies.
  useEffect(() => {
    if (!UUID_RE.test(entryId)) {
      setState("missing");
      return;
    }
    let live = true;
    void supabase
      .from("entries")
      .select(META_COLUMNS)
      .eq("id", entryId)
      .maybeSingle()
      .then(({ data, error: err }) => {
        if (!live) return;
        if (err) {
          setError(err.message);
          setState("error");
        } else if (!data) {
          setState("missing");
        } else {
          const row = data as unknown as EntryMeta;
          setMeta(row);
          setState("ready");
          void supabase
            .from("devices")
            .select("name")
            .eq("uuid", row.device_uuid)
            .maybeSingle()
            .then(({ data: device }) => {
              if (live && device) setDeviceName((device as { name: string }).name);
            });
        }
      });
    return () => {
      live = false;
    };
  }, [supabase, entryId]);

  // Escape closes (the traffic filter keeps its own Escape).
  const closeRef = useRef(onClose);
  closeRef.current = onClose;
  useEffect(() => {
    const handler = (e: KeyboardEvent) => {
      if (e.key !== "Escape" || e.defaultPrevented) return;
      const t = e.target as HTMLElement | null;
      if (t && t.tagName === "INPUT" && ["search", "text"].includes((t as HTMLInputElement).type)) return;
      closeRef.current();
    };
    window.addEventListener("keydown", handler);
    return () => window.removeEventListener("keydown", handler);
  }, []);

  /** One body column, read once (only that column) and kept. */
  const loadBody = useCallback(
    (side: Side): Promise<Uint8Array | null> => {
      const known = bodyPromises.current[side];
      if (known) return known;
      if (!meta) return Promise.resolve(null);
      setBodies((b) => ({ ...b, [side]: { loading: true, error: null } }));
      const column = side === "request" ? "request_body" : "response_body";
      const promise = Promise.resolve(
        supabase.from("entries").select(column).eq("id", meta.id).eq("captured_at", meta.captured_at).maybeSingle(),
      ).then(({ data, error: err }) => {
        if (err || !data) {
          delete bodyPromises.current[side];
          const message = err ? err.message : "The entry is gone (past retention?).";
          if (alive.current) setBodies((b) => ({ ...b, [side]: { loading: false, error: message } }));
          throw new Error(message);
        }
        const bytes = byteaToBytes((data as Record<string, unknown>)[column]);
        if (alive.current) setBodies((b) => ({ ...b, [side]: { loading: false, error: null, bytes } }));
        return bytes;
      });
      bodyPromises.current[side] = promise;
      return promise;
    },
    [supabase, meta],
  );

  const openTab = (next: Tab) => {
    setTab(next);
    if (next === "request-body") void loadBody("request").catch(() => undefined);
    if (next === "response-body") void loadBody("response").catch(() => undefined);
  };

  const copy = async (kind: "curl" | "fetch") => {
    if (!meta) return;
    let requestBody: Uint8Array | null;
    try {
      requestBody = await loadBody("request");
    } catch (err) {
      setCopied({ kind, text: "", note: err instanceof Error ? err.message : String(err) });
      return;
    }
    const full: FullEntry = { ...meta, request_body: requestBody, response_body: null };
    const text = kind === "curl" ? asCurl(full, includeSecrets) : asFetch(full, includeSecrets);
    const notes: string[] = [];
    if (meta.request_body_truncated) notes.push("the request body was truncated at capture: the copy carries the stored part");
    if (!includeSecrets) notes.push("secret headers are redacted (tick include secrets to keep them)");
    let copiedOk = false;
    try {
      await navigator.clipboard.writeText(text);
      copiedOk = true;
    } catch {
      copiedOk = false;
    }
    if (!alive.current) return;
    const head = copiedOk ? `Copied as ${kind === "curl" ? "cURL" : "fetch"}` : "The clipboard is not available here: copy the text below";
    setCopied({ kind, text, note: [head, ...notes].join("; ") + "." });
  };

  const doResend = async () => {
    if (!meta) return;
    setResend({ phase: "asking", text: "Asking the proxy to resend…" });
    const { data, error: err } = await supabase.rpc("resend_entry", { entry_id: meta.id });
    if (!alive.current) return;
    if (err) {
      setResend({ phase: "error", text: err.message });
      return;
    }
    const answer = data as { request_id: string };
    setResend({ phase: "requested", text: "Resend requested: waiting for the device's proxy to replay it…" });
    // A bounded follow-up (20 s): the claim in resend_requests, then the replayed entry in the traffic.
    const { data: requested } = await supabase.from("resend_requests").select("requested_at").eq("id", answer.request_id).maybeSingle();
    const since = (requested as { requested_at: string } | null)?.requested_at ?? new Date().toISOString();
    const deadline = Date.now() + 20_000;
    let claimed = false;
    while (alive.current && Date.now() < deadline) {
      await new Promise((r) => setTimeout(r, 500));
      if (!claimed) {
        const { data: row } = await supabase.from("resend_requests").select("claimed_at").eq("id", answer.request_id).maybeSingle();
        if ((row as { claimed_at: string | null } | null)?.claimed_at) {
          claimed = true;
          if (alive.current) setResend({ phase: "claimed", text: "The proxy took the request and is replaying it…" });
        }
      }
      if (claimed) {
        const { data: replays } = await supabase
          .from("entries")
          .select("id,status,error")
          .eq("device_uuid", meta.device_uuid)
          .eq("method", meta.method)
          .eq("host", meta.host)
          .eq("path", meta.path)
          .gt("captured_at", since)
          .neq("id", meta.id)
          .order("captured_at", { ascending: true })
          .limit(1);
        const replay = (replays as { id: string; status: number | null; error: string | null }[] | null)?.[0];
        if (replay) {
          if (alive.current)
            setResend({
              phase: "replayed",
              text: `Replayed: ${replay.status ? `status ${replay.status}` : `failed (${replay.error ?? "no answer"})`}.`,
              replayId: replay.id,
            });
          return;
        }
      }
    }
    if (alive.current)
      setResend((r) =>
        r && r.phase !== "replayed"
          ? { phase: "lapsed", text: claimed ? "Replayed by the proxy; its entry has not shown up yet." : "Requested; the device's proxy has not taken it yet (is it running?)." }
          : r,
      );
  };

  return (
    <aside className="detail" data-testid="entry-detail" data-entry-id={entryId} aria-label="Entry detail">
      <div className="detail-head">
        {meta ? (
          <>
            <strong className="detail-method" data-testid="detail-method">{meta.method}</strong>
            <span className={`detail-status ${statusClass(meta)}`} data-testid="detail-status" title={meta.error ?? undefined}>
              {meta.status || (meta.error ? "error" : "—")}
            </span>
            <span className="detail-host" title={meta.host}>{meta.host}</span>
          </>
        ) : (
          <strong>Entry</strong>
        )}
        <span className="spacer" />
        <button type="button" data-testid="detail-close" onClick={onClose} aria-label="Close the detail" title="Close (Esc)">
          ×
        </button>
      </div>
      {state === "loading" && <Loading what="the entry" />}
      {state === "error" && <ErrorNote error={error} testId="detail-error-load" />}
      {state === "missing" && (
        <div className="error" role="alert" data-testid="detail-not-found">
          Entry not found: no entry {entryId} that you may see. It may not exist, be past retention, or belong to a
          workspace you are not in.
        </div>
      )}
      {state === "ready" && meta && (
        <div className="detail-body">
          <p className="detail-url" data-testid="detail-url">{fullUrl(meta)}</p>
          <dl className="detail-facts">
            <dt>Device</dt>
            <dd data-testid="detail-device" title={meta.device_uuid}>{deviceName ?? meta.device_uuid}</dd>
            <dt>Time</dt>
            <dd data-testid="detail-time" title={meta.captured_at}>{new Date(meta.captured_at).toLocaleString()}</dd>
            <dt>Duration</dt>
            <dd data-testid="detail-duration">{meta.duration_ms != null ? formatDuration(meta.duration_ms) : "—"}</dd>
            <dt>Size</dt>
            <dd data-testid="detail-size">
              request {formatSize(meta.request_size ?? meta.request_body_size)}, response {formatSize(meta.response_size ?? meta.response_body_size)}
            </dd>
            <dt>Protocol</dt>
            <dd>{meta.http_version ?? "—"} · {meta.source}</dd>
          </dl>
          {meta.error && (
            <div className="error" role="alert" data-testid="detail-error">
              {meta.error}
            </div>
          )}
          <div className="detail-actions">
            <label className="detail-secrets" title="Authorization, Cookie, Set-Cookie and API-key headers in copies and HAR">
              <input type="checkbox" data-testid="include-secrets" checked={includeSecrets} onChange={(e) => setIncludeSecrets(e.target.checked)} />
              include secrets
            </label>
            <button type="button" data-testid="copy-curl" onClick={() => void copy("curl")}>Copy as cURL</button>
            <button type="button" data-testid="copy-fetch" onClick={() => void copy("fetch")}>Copy as fetch</button>
            <HarExportButton entryIds={() => [meta.id]} includeSecrets={includeSecrets} testId="detail-export-har" label="Export HAR" />
            {busybro && (
              <button type="button" data-testid="ask-busybro-host" onClick={() => busybro.ask(hostQuestion(meta.host))}>
                Ask BusyBro about this host
              </button>
            )}
            {can("breakpoints", "edit") && (
              <button type="button" data-testid="resend" onClick={() => void doResend()} disabled={resend?.phase === "asking" || resend?.phase === "requested" || resend?.phase === "claimed"}>
                Resend
              </button>
            )}
          </div>
          {resend && (
            <div className={resend.phase === "error" ? "error" : "notice"} role="status" data-testid="resend-outcome" data-phase={resend.phase}>
              {resend.text}{" "}
              {resend.replayId && (
                <a href={`?entry=${resend.replayId}`} data-testid="resend-open" onClick={(e) => {
                  e.preventDefault();
                  navigate(`/?entry=${encodeURIComponent(resend.replayId!)}`);
                }}>
                  Open the replay
                </a>
              )}
            </div>
          )}
          {copied && (
            <div className="copied" data-testid="copied">
              <div className="copied-head">
                <p className="muted" data-testid="copied-note">{copied.note}</p>
                <button type="button" className="copied-hide" data-testid="copied-hide" onClick={() => setCopied(null)} aria-label="Hide the copied text">
                  Hide
                </button>
              </div>
              {copied.text && (
                <textarea data-testid="copied-text" data-kind={copied.kind} readOnly value={copied.text} rows={Math.min(12, copied.text.split("\n").length + 1)} onFocus={(e) => e.target.select()} />
              )}
            </div>
          )}
          <div className="detail-tabs" role="tablist">
            {(
              [
                ["headers", "Headers"],
                ["request-body", "Request body"],
                ["response-body", "Response body"],
                ["timings", "Timings"],
              ] as [Tab, string][]
            ).map(([id, label]) => (
              <button key={id} type="button" role="tab" aria-selected={tab === id} className={tab === id ? "on" : ""} data-testid={`detail-tab-${id}`} onClick={() => openTab(id)}>
                {label}
              </button>
            ))}
          </div>
          <div className="detail-panel" role="tabpanel">
            {tab === "headers" && (
              <>
                <HeaderTable title="Request headers" testId="request-headers" headers={meta.request_headers} />
                <HeaderTable title="Response headers" testId="response-headers" headers={meta.response_headers} />
              </>
            )}
            {tab === "request-body" && <BodyPanel side="request" meta={meta} state={bodies.request} retry={() => openTab("request-body")} />}
            {tab === "response-body" && <BodyPanel side="response" meta={meta} state={bodies.response} retry={() => openTab("response-body")} />}
            {tab === "timings" && <Timings meta={meta} />}
          </div>
        </div>
      )}
    </aside>
  );
}

function HeaderTable({ title, testId, headers }: { title: string; testId: string; headers: HeaderPair[] }) {
  const list = Array.isArray(headers) ? headers : [];
  return (
    <section className="detail-section">
      <h3>
        {title} <span className="muted">({list.length})</span>
      </h3>
      {list.length === 0 ? (
        <p className="empty" data-testid={testId}>None.</p>
      ) : (
        <table className="headers" data-testid={testId}>
          <tbody>
            {list.map(([name, value], i) => (
              <tr key={i} data-testid="header-row">
                <th scope="row">{name}</th>
                <td>{value}</td>
              </tr>
            ))}
          </tbody>
        </table>
      )}
    </section>
  );
}

function BodyPanel({ side, meta, state, retry }: { side: Side; meta: EntryMeta; state: BodyState | undefined; retry: () => void }) {
  if (!state || state.loading) return <Loading what={`the ${side} body`} />;
  if (state.error)
    return (
      <>
        <ErrorNote error={state.error} testId={`${side}-body-error`} />
        <button type="button" onClick={retry}>Try again</button>
      </>
    );
  return (
    <BodyView
      side={side}
      bytes={state.bytes ?? null}
      contentType={side === "request" ? meta.request_content_type : meta.response_content_type}
      size={side === "request" ? meta.request_body_size : meta.response_body_size}
      truncated={side === "request" ? meta.request_body_truncated : meta.response_body_truncated}
    />
  );
}

function Timings({ meta }: { meta: EntryMeta }) {
  const total = meta.duration_ms;
  const ttfb = meta.ttfb_ms;
  const download = total != null && ttfb != null ? Math.max(0, total - ttfb) : null;
  const pct = (v: number | null) => (total && v != null ? `${Math.max(1, Math.min(100, (v / total) * 100))}%` : "0%");
  return (
    <section className="detail-section" data-testid="detail-timings">
      <table className="timings">
        <tbody>
          <tr>
            <th scope="row">Started</th>
            <td colSpan={2} data-testid="timing-start">{meta.captured_at}</td>
          </tr>
          <tr>
            <th scope="row">Waiting (time to first byte)</th>
            <td data-testid="timing-ttfb">{ttfb != null ? formatDuration(ttfb) : "—"}</td>
            <td className="bar-cell"><span className="bar wait" style={{ width: pct(ttfb) }} /></td>
          </tr>
          <tr>
            <th scope="row">Receiving the response</th>
            <td data-testid="timing-receive">{download != null ? formatDuration(download) : "—"}</td>
            <td className="bar-cell"><span className="bar receive" style={{ marginLeft: pct(ttfb), width: pct(download) }} /></td>
          </tr>
          <tr>
            <th scope="row">Total</th>
            <td data-testid="timing-total">{total != null ? formatDuration(total) : "—"}</td>
            <td className="bar-cell"><span className="bar total" style={{ width: total ? "100%" : "0%" }} /></td>
          </tr>
        </tbody>
      </table>
      {meta.error && <p className="muted">The exchange failed: {meta.error}</p>}
    </section>
  );
}
