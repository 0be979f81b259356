// BusyBro's wire: POST <api>/functions/v1/ask with the session's bearer token and `Accept: text/event-stream`,
// read as server-sent events by hand (res.body.getReader(), records split on a blank line, `event:` and `data:`
// lines parsed, `: ping` comments skipped). One callback per frame; a non-200 answer is an AskError carrying the
// server's own message (503 busybro_not_configured, 401 invalid_session, 400 validation_failed...).

/** One finished turn of the thread, as `ask` takes it in `history`. */
export interface HistoryTurn {
  role: "user" | "assistant";
  content: string;
}

/** A frame of the stream, as the `ask` function sends them (docs/busybro.md). */
export type AskFrame =
  | { event: "text"; delta: string }
  | { event: "tool"; label: string }
  | { event: "done"; answer: string }
  | { event: "error"; message: string };

export class AskError extends Error {
  constructor(
    message: string,
    readonly status: number | null,
    readonly code: string | null,
  ) {
    super(message);
  }
}

/** The history `ask` accepts: at most 20 turns, each content at most 20,000 characters. */
export const MAX_HISTORY = 20;
export const MAX_CONTENT = 20_000;
export const MAX_QUESTION = 8_000;

/**
 * Splits a growing text buffer into complete SSE records (each ended by a blank line) and the unfinished rest.
 * Accepts \n, \r\n and \r line ends, as the SSE format allows.
 */
export function splitRecords(buffer: string): { records: string[]; rest: string } {
  const normalized = buffer.replace(/\r\n|\r(?!$)/g, "\n"); // a trailing \r may be half of a \r\n
  const parts = normalized.split("\n\n");
  const rest = parts.pop() ?? "";
  return { records: parts, rest };
}

/** One SSE record as a frame, or null for a comment (`: ping`), an unknown event or a malformed data line. */
export function parseRecord(record: string): AskFrame | null {
  let event = "message";
  const data: string[] = [];
  for (const line of record.split("\n")) {
    if (!line || line.startsWith(":")) continue; // a comment: the server's keep-alive ping
    const colon = line.indexOf(":");
    const field = colon < 0 ? line : line.slice(0, colon);
    let value = colon < 0 ? "" : line.slice(colon + 1);
    if (value.startsWith(" ")) value = value.slice(1);
    if (field === "event") event = value;
    else if (field === "data") data.push(value);
  }
  if (data.length === 0) return null;
  let payload: unknown;
  try {
    payload = JSON.parse(data.join("\n"));
  } catch {
    return null;
  }
  const p = (payload ?? {}) as Record<string, unknown>;
  const str = (key: string): string => (typeof p[key] === "string" ? (p[key] as string) : "");
  switch (event) {
    case "text":
      return { event, delta: str("delta") };
    case "tool":
      return { event, label: str("label") };
    case "done":
      return { event, answer: str("answer") };
    case "error":
      return { event, message: str("message") || "BusyBro could not answer." };
    default:
      return null;
  }
}

export interface AskRequest {
  apiUrl: string;
  anonKey: string;
  accessToken: string;
  question: string;
  history: HistoryTurn[];
  signal: AbortSignal;
  onFrame: (frame: AskFrame) => void;
}

/**
 * Asks and streams: resolves when the stream ends (after `done` or `error`, or when the server closes it);
 * rejects with an AskError for a non-200 answer, and with the fetch's AbortError when `signal` aborts.
 */
export async function askStream(req: AskRequest): Promise<void> {
  const response = await fetch(`${req.apiUrl}/functions/v1/ask`, {
    method: "POST",
    headers: {
      Authorization: `Bearer ${req.accessToken}`,
      apikey: req.anonKey,
      "Content-Type": "application/json",
      Accept: "text/event-stream",
    },
    body: JSON.stringify({ question: req.question, history: req.history }),
    signal: req.signal,
  });
  if (!response.ok || !response.body) {
    throw await refusal(response);
  }
  const reader = response.body.getReader();
  const decoder = new TextDecoder();
  let buffer = "";
  try {
    for (;;) {
      const { done, value } = await reader.read();
      buffer += done ? decoder.decode() : decoder.decode(value, { stream: true });
      const { records, rest } = splitRecords(done ? `${buffer}\n\n` : buffer);
      buffer = rest;
      for (const record of records) {
        const frame = parseRecord(record);
        if (frame) req.onFrame(frame);
      }
      if (done) return;
    }
  } finally {
    reader.releaseLock();
  }
}

/** The server's refusal as an AskError: its `message` (or `error`) when the body is JSON, else the status. */
async function refusal(response: Response): Promise<AskError> {
  let text = "";
  try {
    text = await response.text();
  } catch {
    text = "";
  }
  let code: string | null = null;
  let message = "";
  try {
    const body = JSON.parse(text) as Record<string, unknown>;
    if (typeof body.error === "string") code = body.error;
    if (typeof body.message === "string") message = body.message;
    else if (typeof body.msg === "string") message = body.msg;
  } catch {
    message = text.trim().slice(0, 300);
  }
  const head = `BusyBro answered HTTP ${response.status}${code ? ` (${code})` : ""}`;
  return new AskError(message ? `${head}: ${message}` : `${head}.`, response.status, code);
}
