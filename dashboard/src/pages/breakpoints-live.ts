// The paused flows of one workspace, live: the active breakpoint_events rows from REST, then every INSERT and
// UPDATE of breakpoint_events that the database broadcasts on ws:<workspace_id> (the same private topic as the
// traffic firehose; its entries messages are ignored here). The list is read again from REST each time the
// channel is (re)joined, so a flow paused or resolved while the page was away is not missed. No polling.
import type { RealtimeChannel, SupabaseClient } from "@supabase/supabase-js";
import { useCallback, useEffect, useRef, useState } from "react";
import { EVENT_COLUMNS, type FlowEvent } from "./breakpoints-data";

export type LiveState = "connecting" | "live" | "offline";

export interface Outcome {
  event: FlowEvent;
  at: number;
}

export interface PausedFlows {
  flows: FlowEvent[] | null; // null until the first read
  outcomes: Outcome[]; // the latest resolved flows, newest first
  live: LiveState;
  error: string | null;
  refresh: () => void;
  resolved: (event: FlowEvent) => void; // the page's own continue_breakpoint answer
}

const KEEP_OUTCOMES = 5;

function byPausedAt(a: FlowEvent, b: FlowEvent): number {
  return a.paused_at < b.paused_at ? -1 : a.paused_at > b.paused_at ? 1 : 0;
}

export function usePausedFlows(supabase: SupabaseClient, token: string, workspaceId: string): PausedFlows {
  const [flows, setFlows] = useState<FlowEvent[] | null>(null);
  const [outcomes, setOutcomes] = useState<Outcome[]>([]);
  const [live, setLive] = useState<LiveState>("connecting");
  const [error, setError] = useState<string | null>(null);
  const done = useRef<Set<string>>(new Set()); // ids known resolved: a late REST answer does not bring them back
  const current = useRef(workspaceId);
  current.current = workspaceId;
  const tokenRef = useRef(token); // a refreshed token does not restart the channel (supabase-js re-auths it)
  tokenRef.current = token;

  const apply = useCallback((event: FlowEvent) => {
    if (event.workspace_id !== current.current) return;
    if (event.active) {
      if (done.current.has(event.id)) return;
      setFlows((list) => {
        const rest = (list ?? []).filter((f) => f.id !== event.id);
        return [...rest, event].sort(byPausedAt);
      });
      return;
    }
    done.current.add(event.id);
    setFlows((list) => (list ?? []).filter((f) => f.id !== event.id));
    setOutcomes((list) =>
      [{ event, at: Date.now() }, ...list.filter((o) => o.event.id !== event.id)].slice(0, KEEP_OUTCOMES),
    );
  }, []);

  const refresh = useCallback(() => {
    const ws = workspaceId;
    void supabase
      .from("breakpoint_events")
      .select(EVENT_COLUMNS)
      .eq("workspace_id", ws)
      .eq("active", true)
      .order("paused_at")
      .then(({ data, error: failed }) => {
        if (ws !== current.current) return;
        if (failed) {
          setError(failed.message);
          return;
        }
        setError(null);
        const fresh = ((data ?? []) as unknown as FlowEvent[]).filter((f) => !done.current.has(f.id));
        setFlows(fresh);
      });
  }, [supabase, workspaceId]);

  useEffect(() => {
    setFlows(null);
    setOutcomes([]);
    setLive("connecting");
    done.current = new Set();
    let channel: RealtimeChannel | null = null;
    let disposed = false;
    refresh();
    void supabase.realtime.setAuth(tokenRef.current).then(() => {
      if (disposed) return;
      const onChange = ({ payload }: { payload?: Record<string, unknown> }) => {
        if (payload?.table !== "breakpoint_events" || !payload.record) return;
        apply(payload.record as FlowEvent);
      };
      channel = supabase
        .channel(`ws:${workspaceId}`, { config: { private: true } })
        .on("broadcast", { event: "INSERT" }, onChange)
        .on("broadcast", { event: "UPDATE" }, onChange)
        .subscribe((status, err) => {
          if (disposed) return;
          if (status === "SUBSCRIBED") {
            setLive("live");
            refresh(); // what happened before the join (or while away)
          } else if (status === "CHANNEL_ERROR" || status === "TIMED_OUT" || status === "CLOSED") {
            setLive("offline");
            if (err?.message) setError(`live updates stopped: ${err.message}`);
          }
        });
    });
    return () => {
      disposed = true;
      if (channel) void supabase.removeChannel(channel);
    };
  }, [supabase, workspaceId, refresh, apply]);

  return { flows, outcomes, live, error, refresh, resolved: apply };
}
