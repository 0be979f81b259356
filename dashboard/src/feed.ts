// The live traffic of one workspace: the latest entries from REST, then the ws:<workspace_id> firehose, rows
// deduplicated by id, flushed into React once per animation frame, and after a reconnect the entries missed
// meanwhile replayed from REST.
import type { RealtimeChannel, SupabaseClient } from "@supabase/supabase-js";
import { useEffect, useRef, useState } from "react";
import { type EntryRow, type FirehosePayload, LIST_COLUMNS, rowsOfMessage } from "./entries";

export type ConnectionState = "connecting" | "live" | "reconnecting" | "offline";

const INITIAL_LIMIT = 500;
const REPLAY_LIMIT = 10000;

// The rows held, oldest first (appending is O(1); the table reads them newest first).
export interface FeedStore {
  rows: EntryRow[];
  ids: Set<string>;
  newestMs: number;
  newestIso: string | null;
}

export interface Feed {
  store: FeedStore;
  version: number; // bumped on every flush: the table re-renders
  connection: ConnectionState;
  error: string | null;
  notice: string | null;
  loading: boolean;
  // Rows put before the first held row since mount (the initial REST load): keeps a paused view in place.
  prependedTotal: number;
}

function emptyStore(): FeedStore {
  return { rows: [], ids: new Set(), newestMs: -Infinity, newestIso: null };
}

function noteNewest(store: FeedStore, row: EntryRow): void {
  const ms = Date.parse(row.captured_at);
  if (ms > store.newestMs) {
    store.newestMs = ms;
    store.newestIso = row.captured_at;
  }
}

// Appends the rows not held yet; returns how many were new.
function appendRows(store: FeedStore, rows: EntryRow[]): number {
  let added = 0;
  for (const row of rows) {
    if (store.ids.has(row.id)) continue;
    store.ids.add(row.id);
    store.rows.push(row);
    noteNewest(store, row);
    added++;
  }
  return added;
}

// Puts older rows (newest first, as REST returns them) before the held ones; returns how many were new.
function prependRows(store: FeedStore, newestFirst: EntryRow[]): number {
  const older: EntryRow[] = [];
  for (let i = newestFirst.length - 1; i >= 0; i--) {
    const row = newestFirst[i];
    if (store.ids.has(row.id)) continue;
    store.ids.add(row.id);
    older.push(row);
    noteNewest(store, row);
  }
  if (older.length) store.rows = older.concat(store.rows);
  return older.length;
}

export function useTrafficFeed(supabase: SupabaseClient, workspaceId: string, accessToken: string): Feed {
  const storeRef = useRef<FeedStore>(emptyStore());
  const bufferRef = useRef<EntryRow[]>([]);
  const frameRef = useRef<number | null>(null);
  const [version, setVersion] = useState(0);
  const [connection, setConnection] = useState<ConnectionState>("connecting");
  const [error, setError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const [loading, setLoading] = useState(true);
  const [prependedTotal, setPrependedTotal] = useState(0);
  // The token changes on every refresh; the channel must not be rebuilt for it (supabase-js re-authorizes it).
  const tokenRef = useRef(accessToken);
  tokenRef.current = accessToken;

  useEffect(() => {
    let disposed = false;
    const store = emptyStore();
    storeRef.current = store;
    bufferRef.current = [];
    setVersion((v) => v + 1);
    setConnection("connecting");
    setError(null);
    setNotice(null);
    setLoading(true);
    setPrependedTotal(0);

    const flush = () => {
      frameRef.current = null;
      if (disposed) return;
      const batch = bufferRef.current;
      bufferRef.current = [];
      if (appendRows(store, batch) > 0) setVersion((v) => v + 1);
    };
    const schedule = () => {
      if (frameRef.current == null) frameRef.current = requestAnimationFrame(flush);
    };

    const latest = async () => {
      const { data, error: err } = await supabase
        .from("entries")
        .select(LIST_COLUMNS)
        .eq("workspace_id", workspaceId)
        .order("captured_at", { ascending: false })
        .limit(INITIAL_LIMIT);
      if (disposed) return;
      setLoading(false);
      if (err) {
        setError(`Could not load the traffic: ${err.message}`);
        return;
      }
      const added = prependRows(store, (data ?? []) as unknown as EntryRow[]);
      setPrependedTotal((n) => n + added);
      setVersion((v) => v + 1);
    };

    // Entries at or after the newest held (a reconnect's gap); REST's answer is deduplicated by id.
    const replay = async () => {
      let query = supabase.from("entries").select(LIST_COLUMNS).eq("workspace_id", workspaceId);
      if (store.newestIso) query = query.gte("captured_at", store.newestIso);
      const { data, error: err } = await query.order("captured_at", { ascending: true }).limit(REPLAY_LIMIT);
      if (disposed) return;
      if (err) {
        setNotice(`reconnected, but the missed entries could not be loaded: ${err.message}`);
        return;
      }
      // Rows buffered for the next frame go in after the replayed ones.
      const added = appendRows(store, (data ?? []) as unknown as EntryRow[]);
      setVersion((v) => v + 1);
      setNotice(`reconnected: ${added} missed ${added === 1 ? "entry" : "entries"} replayed`);
    };

    let channel: RealtimeChannel | null = null;
    let everSubscribed = false;
    let interrupted = false;
    let lastStatus = "";
    void supabase.realtime.setAuth(tokenRef.current).then(() => {
      if (disposed) return;
      channel = supabase
        .channel(`ws:${workspaceId}`, { config: { private: true } })
        .on("broadcast", { event: "INSERT" }, ({ payload }) => {
          const rows = rowsOfMessage(payload as FirehosePayload);
          if (!rows.length) return;
          for (const row of rows) bufferRef.current.push(row);
          schedule();
        })
        .subscribe((status, err) => {
          if (disposed) return;
          lastStatus = status;
          if (status === "SUBSCRIBED") {
            setConnection("live");
            setError((prev) => (prev?.startsWith("Live feed") ? null : prev));
            if (everSubscribed && interrupted) void replay();
            everSubscribed = true;
            interrupted = false;
          } else if (status === "CLOSED") {
            interrupted = everSubscribed || interrupted;
            setConnection("offline");
          } else {
            // CHANNEL_ERROR or TIMED_OUT: realtime-js rejoins by itself.
            interrupted = true;
            setConnection(everSubscribed ? "reconnecting" : "connecting");
            if (err && !everSubscribed) setError(`Live feed: ${err.message}`);
          }
        });
    });
    void latest();

    // The browser lost its network: the socket may survive it (frames lost meanwhile) or be closed and rejoined.
    const onOffline = () => {
      interrupted = true;
      setConnection("offline");
    };
    const onOnline = () => {
      if (lastStatus === "SUBSCRIBED") {
        setConnection("live");
        interrupted = false;
        void replay();
      } else {
        setConnection(everSubscribed ? "reconnecting" : "connecting");
      }
    };
    window.addEventListener("offline", onOffline);
    window.addEventListener("online", onOnline);
    return () => {
      disposed = true;
      window.removeEventListener("offline", onOffline);
      window.removeEventListener("online", onOnline);
      if (frameRef.current != null) cancelAnimationFrame(frameRef.current);
      frameRef.current = null;
      if (channel) void supabase.removeChannel(channel);
    };
  }, [supabase, workspaceId]);

  return {
    store: storeRef.current,
    version,
    connection,
    error,
    notice,
    loading,
    prependedTotal,
  };
}

const TYPE_BATCH = 100;
const TYPE_GATHER_MS = 80;

// The firehose's rows carry no response_content_type (docs/traffic.md, "The firehose"): the Type column asks REST
// for it, a batch of ids at a time, for the rows it shows (and, while a content-type filter is set, for every held
// row), and writes it into the held row (null when REST has none). `epoch` is bumped after each batch.
export interface TypeFill {
  epoch: number;
  error: string | null;
  /** Queues the rows whose type is unknown; `urgent` (the rows on screen) go before those already waiting. */
  request: (rows: Iterable<EntryRow>, urgent?: boolean) => void;
}

export function useTypeFill(supabase: SupabaseClient, workspaceId: string): TypeFill {
  const [epoch, setEpoch] = useState(0);
  const [error, setError] = useState<string | null>(null);
  const queue = useRef<EntryRow[]>([]);
  const queued = useRef(new Set<string>());
  const running = useRef(false);
  const live = useRef(true);
  const timer = useRef<number | null>(null);

  useEffect(() => {
    live.current = true;
    queue.current = [];
    queued.current = new Set();
    return () => {
      live.current = false;
      if (timer.current != null) window.clearTimeout(timer.current);
      timer.current = null;
    };
  }, [supabase, workspaceId]);

  const run = useRef<() => void>(() => undefined);
  run.current = () => {
    if (running.current || !queue.current.length || !live.current) return;
    running.current = true;
    const batch = queue.current.splice(0, TYPE_BATCH);
    let oldest = Infinity;
    for (const row of batch) {
      const ms = Date.parse(row.captured_at);
      if (ms < oldest) oldest = ms;
    }
    let query = supabase.from("entries").select("id,response_content_type").eq("workspace_id", workspaceId);
    query = query.in(
      "id",
      batch.map((r) => r.id),
    );
    // The partition key bounds the search (entries are partitioned by captured_at).
    if (Number.isFinite(oldest)) query = query.gte("captured_at", new Date(oldest - 1000).toISOString());
    void query.then(({ data, error: err }) => {
      running.current = false;
      if (!live.current) return;
      const types = new Map<string, string | null>();
      for (const r of (data ?? []) as { id: string; response_content_type: string | null }[]) {
        types.set(r.id, r.response_content_type);
      }
      for (const row of batch) {
        queued.current.delete(row.id);
        if (row.response_content_type === undefined) row.response_content_type = types.get(row.id) ?? null;
      }
      if (err) setError(`Could not read the content types: ${err.message}`);
      setEpoch((e) => e + 1);
      run.current();
    });
  };

  const request = useRef((rows: Iterable<EntryRow>, urgent = false) => {
    const added: EntryRow[] = [];
    for (const row of rows) {
      if (row.response_content_type !== undefined || queued.current.has(row.id)) continue;
      queued.current.add(row.id);
      added.push(row);
    }
    if (!added.length) return;
    if (urgent) queue.current = added.concat(queue.current);
    else for (const row of added) queue.current.push(row);
    // A short wait gathers the rows of a few frames into one request (a fast feed brings new rows every frame).
    if (timer.current == null) {
      timer.current = window.setTimeout(() => {
        timer.current = null;
        run.current();
      }, TYPE_GATHER_MS);
    }
  }).current;

  return { epoch, error, request };
}
