// The Breakpoints page's data: rule and paused-flow rows as REST and the ws:<workspace_id> topic give them
// (supabase/migrations/20261203101300_create_breakpoints_and_resend.sql), headers as `Name: value` lines, and
// the edits a person's changes make for continue_breakpoint (docs/proxy.md, "Breakpoints and resend").

export interface Rule {
  id: string;
  workspace_id: string;
  device_uuid: string | null;
  phase: "request" | "response";
  method: string | null;
  host_pattern: string;
  path_pattern: string;
  enabled: boolean;
  created_at: string;
}

export const RULE_COLUMNS = "id,workspace_id,device_uuid,phase,method,host_pattern,path_pattern,enabled,created_at";

/** What the form edits: the columns a person may write. */
export interface RuleDraft {
  phase: "request" | "response";
  method: string; // "" = any
  host_pattern: string;
  path_pattern: string;
  device_uuid: string; // "" = any device
  enabled: boolean;
}

export const EMPTY_DRAFT: RuleDraft = {
  phase: "request",
  method: "",
  host_pattern: "*",
  path_pattern: "*",
  device_uuid: "",
  enabled: true,
};

export function draftOf(rule: Rule): RuleDraft {
  return {
    phase: rule.phase,
    method: rule.method ?? "",
    host_pattern: rule.host_pattern,
    path_pattern: rule.path_pattern,
    device_uuid: rule.device_uuid ?? "",
    enabled: rule.enabled,
  };
}

/** The row to insert or the columns to update; blank patterns mean "*", a blank method or device "any". */
export function columnsOf(draft: RuleDraft) {
  return {
    phase: draft.phase,
    method: draft.method.trim() ? draft.method.trim().toUpperCase() : null,
    host_pattern: draft.host_pattern.trim() || "*",
    path_pattern: draft.path_pattern.trim() || "*",
    device_uuid: draft.device_uuid || null,
    enabled: draft.enabled,
  };
}

export type HeaderPairs = [string, string][];

interface SnapshotMessage {
  headers?: HeaderPairs;
  body?: string;
  body_b64?: string;
  body_size?: number;
  body_truncated?: boolean;
}

export interface Snapshot {
  request?: SnapshotMessage & { method?: string; url?: string; http_version?: string };
  response?: SnapshotMessage & { status?: number };
}

export interface FlowEvent {
  id: string;
  breakpoint_id: string | null;
  workspace_id: string;
  device_uuid: string;
  flow_id: string;
  phase: "request" | "response";
  snapshot: Snapshot;
  paused_at: string;
  expires_at: string | null; // when the holding proxy lets it go on by itself (null: an older proxy)
  active: boolean;
  outcome: "continued" | "edited" | "aborted" | "timed_out" | null;
  resolved_at: string | null;
}

export const EVENT_COLUMNS = "id,breakpoint_id,workspace_id,device_uuid,flow_id,phase,snapshot,paused_at,expires_at,active,outcome,resolved_at";

/** The proxy's default breakpoint timeout: the countdown of a flow whose proxy did not write expires_at. */
export const TIMEOUT_S = 60;

/** Seconds until the holding proxy lets the flow go on: its own expires_at, else the default timeout. */
export function secondsLeft(event: Pick<FlowEvent, "paused_at" | "expires_at">, nowMs: number): number {
  const deadline = event.expires_at ? Date.parse(event.expires_at) : Date.parse(event.paused_at) + TIMEOUT_S * 1000;
  return Math.max(0, Math.ceil((deadline - nowMs) / 1000));
}

export function headerLines(pairs: HeaderPairs | undefined): string {
  return (pairs ?? []).map(([k, v]) => `${k}: ${v}`).join("\n");
}

/** `Name: value` lines to pairs (blank lines skipped); a line without a colon is an error. */
export function parseHeaderLines(text: string): { pairs: HeaderPairs; error: string | null } {
  const pairs: HeaderPairs = [];
  const lines = text.split(/\r?\n/);
  for (let i = 0; i < lines.length; i++) {
    const line = lines[i];
    if (!line.trim()) continue;
    const colon = line.indexOf(":", line.startsWith(":") ? 1 : 0);
    if (colon <= 0) return { pairs, error: `header line ${i + 1} has no "Name: value"` };
    pairs.push([line.slice(0, colon).trim(), line.slice(colon + 1).trim()]);
  }
  return { pairs, error: null };
}

function samePairs(a: HeaderPairs, b: HeaderPairs): boolean {
  return a.length === b.length && a.every(([k, v], i) => k === b[i][0] && v === b[i][1]);
}

/** What the editor holds for one paused flow. */
export interface FlowDraft {
  method: string;
  url: string;
  status: string;
  headers: string;
  body: string;
}

/** The message the editor changes: the request, or the response when paused on it. */
export function messageOf(event: FlowEvent): SnapshotMessage {
  return (event.phase === "response" ? event.snapshot.response : event.snapshot.request) ?? {};
}

/** A body the editor may change: text, and all of it (a cut or binary body is sent on unchanged). */
export function bodyEditable(event: FlowEvent): boolean {
  const m = messageOf(event);
  return typeof m.body === "string" && !m.body_truncated;
}

export function flowDraftOf(event: FlowEvent): FlowDraft {
  const m = messageOf(event);
  return {
    method: event.snapshot.request?.method ?? "",
    url: event.snapshot.request?.url ?? "",
    status: String(event.snapshot.response?.status ?? ""),
    headers: headerLines(m.headers),
    body: m.body ?? "",
  };
}

/**
 * The edits continue_breakpoint gets: only what changed (headers, when changed, as the whole list of pairs,
 * which replaces them all). null when nothing changed (a plain continue); an error string when a field is wrong.
 */
export function editsOf(event: FlowEvent, draft: FlowDraft): { edits: Record<string, unknown> | null; error: string | null } {
  const before = flowDraftOf(event);
  const edits: Record<string, unknown> = {};
  if (event.phase === "request") {
    const method = draft.method.trim().toUpperCase();
    if (method !== before.method) {
      if (!/^[A-Z]{1,32}$/.test(method)) return { edits: null, error: "the method is letters only, like GET or POST" };
      edits.method = method;
    }
    const url = draft.url.trim();
    if (url !== before.url) {
      if (!/^https?:\/\/\S+$/i.test(url)) return { edits: null, error: "the URL starts with http:// or https://" };
      edits.url = url;
    }
  } else if (draft.status.trim() !== before.status) {
    const status = Number(draft.status.trim());
    if (!Number.isInteger(status) || status < 100 || status > 999) {
      return { edits: null, error: "the status is a number from 100 to 999" };
    }
    edits.status = status;
  }
  const parsed = parseHeaderLines(draft.headers);
  if (parsed.error) return { edits: null, error: parsed.error };
  if (!samePairs(parsed.pairs, parseHeaderLines(before.headers).pairs)) edits.headers = parsed.pairs;
  if (bodyEditable(event) && draft.body !== before.body) edits.body = draft.body;
  return { edits: Object.keys(edits).length ? edits : null, error: null };
}

export const OUTCOME_TEXT: Record<string, string> = {
  continued: "continued unchanged",
  edited: "continued with edits",
  aborted: "aborted",
  timed_out: "timed out (went on unchanged)",
};

export function describeFlow(event: FlowEvent): string {
  const r = event.snapshot.request;
  return `${r?.method ?? "?"} ${r?.url ?? event.flow_id}`;
}
