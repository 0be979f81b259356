// The traffic list's row: what REST returns for the list columns and what a ws:<workspace_id> INSERT message
// carries (docs/traffic.md, "The firehose"), and the formatting of each cell.

export interface EntryRow {
  id: string;
  device_uuid: string;
  captured_at: string;
  method: string;
  scheme: string;
  host: string;
  path: string;
  query: string | null;
  status: number | null;
  response_size: number | null;
  duration_ms: number | null;
  error: string | null;
  // Only REST answers carry it: the firehose's columns do not include the content type.
  response_content_type?: string | null;
  // The filter's cache (src/filters.ts): host + path + "?" + query in lower case, and the host's length in it.
  _lc?: string;
  _hl?: number;
}

// The columns the list selects from REST (the firehose's columns plus the response content type).
export const LIST_COLUMNS =
  "id,device_uuid,captured_at,method,scheme,host,path,query,status,response_size,duration_ms,error,response_content_type";

export interface FirehosePayload {
  table?: string;
  columns?: string[];
  rows?: unknown[][];
}

// The rows of one firehose message as objects, or [] for a message that is not about entries.
export function rowsOfMessage(payload: FirehosePayload): EntryRow[] {
  if (payload.table !== "entries" || !Array.isArray(payload.columns) || !Array.isArray(payload.rows)) return [];
  const columns = payload.columns;
  return payload.rows.map((values) => {
    const row: Record<string, unknown> = {};
    for (let i = 0; i < columns.length; i++) row[columns[i]] = values[i];
    return row as unknown as EntryRow;
  });
}

export function formatTime(iso: string): string {
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const pad = (n: number, w = 2) => String(n).padStart(w, "0");
  return `${pad(d.getHours())}:${pad(d.getMinutes())}:${pad(d.getSeconds())}.${pad(d.getMilliseconds(), 3)}`;
}

export function formatSize(bytes: number | null): string {
  if (bytes == null) return "";
  if (bytes < 1024) return `${bytes} B`;
  if (bytes < 1024 * 1024) return `${(bytes / 1024).toFixed(1)} kB`;
  return `${(bytes / (1024 * 1024)).toFixed(1)} MB`;
}

export function formatDuration(ms: number | null): string {
  if (ms == null) return "";
  if (ms < 1000) return `${Math.round(ms)} ms`;
  return `${(ms / 1000).toFixed(2)} s`;
}

// "s2xx" .. "s5xx", "s-err" for a failed exchange without status, "" otherwise: a CSS class.
export function statusClass(row: EntryRow): string {
  if (row.status == null || row.status === 0) return row.error ? "s-err" : "";
  const klass = Math.floor(row.status / 100);
  return klass >= 1 && klass <= 5 ? `s${klass}xx` : "";
}

// The short form of a MIME type for the list ("json", "html", "png"...).
export function shortType(contentType: string | null | undefined): string {
  if (!contentType) return "";
  const mime = contentType.split(";")[0].trim().toLowerCase();
  const sub = mime.split("/")[1] ?? mime;
  return sub.replace(/^x-/, "").replace(/\+json$/, "+json");
}

export function pathWithQuery(row: EntryRow): string {
  return row.query ? `${row.path}?${row.query}` : row.path;
}
