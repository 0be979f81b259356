// Small pieces every page uses: a loading line, an error box, a page frame, a one-shot query hook and a live
// subscription to a private Realtime topic. Errors are the API's own messages (PostgREST's `message`).
import type { RealtimeChannel } from "@supabase/supabase-js";
import { type ReactNode, useCallback, useEffect, useRef, useState } from "react";
import { useApp } from "./app";

export function Loading({ what }: { what: string }) {
  return (
    <p className="empty" data-testid="loading" role="status">
      Loading {what}…
    </p>
  );
}

export function ErrorNote({ error, testId = "page-error" }: { error: string | null; testId?: string }) {
  if (!error) return null;
  return (
    <div className="error" role="alert" data-testid={testId}>
      {error}
    </div>
  );
}

export function Page({ title, testId, actions, children }: { title: string; testId: string; actions?: ReactNode; children: ReactNode }) {
  return (
    <section className="page" data-testid={testId}>
      <div className="page-head">
        <h1>{title}</h1>
        <span className="spacer" />
        {actions}
      </div>
      <div className="page-body">{children}</div>
    </section>
  );
}

export interface Query<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload: () => void;
}

/** Runs `run` now and whenever deps change or reload() is called; the last answer wins. */
export function useQuery<T>(run: () => PromiseLike<{ data: unknown; error: { message: string } | null }>, deps: unknown[]): Query<T> {
  const [state, setState] = useState<{ data: T | null; error: string | null; loading: boolean }>({ data: null, error: null, loading: true });
  const [tick, setTick] = useState(0);
  const runRef = useRef(run);
  runRef.current = run;
  useEffect(() => {
    let live = true;
    setState((s) => ({ ...s, loading: true }));
    void Promise.resolve(runRef.current()).then(
      ({ data, error }) => {
        if (!live) return;
        setState(error ? { data: null, error: error.message, loading: false } : { data: data as T, error: null, loading: false });
      },
      (err: unknown) => {
        if (live) setState({ data: null, error: err instanceof Error ? err.message : String(err), loading: false });
      },
    );
    return () => {
      live = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/**
 * Joins the private topic and calls `onMessage(event, payload)` for each broadcast (any event). The session's
 * token is handed to Realtime first (setAuth), so the database decides who may join.
 */
export function useLiveTopic(topic: string | null, onMessage: (event: string, payload: Record<string, unknown>) => void): void {
  const { supabase, session } = useApp();
  const handler = useRef(onMessage);
  handler.current = onMessage;
  useEffect(() => {
    if (!topic) return;
    let channel: RealtimeChannel | null = null;
    let live = true;
    void supabase.realtime.setAuth(session.access_token).then(() => {
      if (!live) return;
      channel = supabase
        .channel(topic, { config: { private: true } })
        .on("broadcast", { event: "*" }, (message: { event: string; payload?: Record<string, unknown> }) =>
          handler.current(message.event, message.payload ?? {}),
        )
        .subscribe();
    });
    return () => {
      live = false;
      if (channel) void supabase.removeChannel(channel);
    };
  }, [supabase, session.access_token, topic]);
}
