// The traffic view's tabs: the signed-in user's rows of workspace_tabs (plus the workspace's shared ones, user_id
// null, which only an admin changes), each a name and a filter. Add, rename, close and switch; every change is
// written through supabase-js, debounced per tab, and the active tab is the own tab whose filter.selected_at is the
// newest, so a reload (or another browser) opens the same tab with the same filter.
import type { SupabaseClient } from "@supabase/supabase-js";
import { useCallback, useEffect, useRef, useState } from "react";
import type { FilterState } from "./filters";

export interface Tab {
  id: string; // a workspace_tabs id, or "local:<n>" until the row is inserted
  name: string;
  filter: FilterState;
  position: number;
  user_id: string | null;
}

export interface TabsApi {
  tabs: Tab[];
  active: Tab | null;
  loading: boolean;
  error: string | null;
  /** "saving" while a write waits or runs, "saved" after the last one landed, "error" after a refusal. */
  saveState: "saved" | "saving" | "error";
  /** Whether the tab is the user's own (shared tabs are not written). */
  own: (tab: Tab) => boolean;
  setFilter: (update: (f: FilterState) => FilterState) => void;
  select: (id: string) => void;
  add: () => void;
  rename: (id: string, name: string) => void;
  close: (id: string) => void;
  dismissError: () => void;
}

const DEBOUNCE_MS = 400;
const COLUMNS = "id,name,filter,position,user_id";
let localSeq = 0;

function localTab(name: string, position: number, userId: string, filter: FilterState = {}): Tab {
  localSeq += 1;
  return { id: `local:${localSeq}`, name, filter, position, user_id: userId };
}

function newestSelected(tabs: Tab[], userId: string): Tab | null {
  let best: Tab | null = null;
  for (const t of tabs) {
    if (t.user_id !== userId) continue;
    const at = typeof t.filter.selected_at === "string" ? t.filter.selected_at : "";
    const bestAt = best && typeof best.filter.selected_at === "string" ? best.filter.selected_at : "";
    if (!best || at > bestAt) best = t;
  }
  return best ?? tabs[0] ?? null;
}

export function useTabs(supabase: SupabaseClient, workspaceId: string, userId: string): TabsApi {
  const tabsRef = useRef<Tab[]>([]);
  const activeRef = useRef<string | null>(null);
  const [, setTick] = useState(0);
  const [loading, setLoading] = useState(true);
  const [error, setError] = useState<string | null>(null);
  const [saveState, setSaveState] = useState<"saved" | "saving" | "error">("saved");
  const timers = useRef(new Map<string, number>());
  const inFlight = useRef(new Set<string>());
  const again = useRef(new Set<string>()); // changed while its write ran: write once more after it
  const closedLocal = useRef(new Set<string>()); // closed while its insert ran: delete it when it lands
  const disposed = useRef(false);

  const render = useCallback(() => setTick((t) => t + 1), []);
  const own = useCallback((tab: Tab) => tab.user_id === userId, [userId]);

  const updateSaveState = useCallback(() => {
    if (timers.current.size || inFlight.current.size) setSaveState("saving");
    else setSaveState((s) => (s === "error" ? s : "saved"));
  }, []);

  const persistRef = useRef<(id: string) => void>(() => undefined);
  persistRef.current = (id: string) => {
    timers.current.delete(id);
    const tab = tabsRef.current.find((t) => t.id === id);
    if (!tab || tab.user_id !== userId) {
      updateSaveState();
      return;
    }
    if (inFlight.current.has(id)) {
      again.current.add(id);
      return;
    }
    inFlight.current.add(id);
    updateSaveState();
    const done = (message: string | null, nextId = id) => {
      inFlight.current.delete(id);
      if (disposed.current) return;
      if (message) {
        setError(message);
        setSaveState("error");
      }
      if (again.current.delete(id)) persistRef.current(nextId);
      else if (message == null && !timers.current.size && !inFlight.current.size) setSaveState("saved");
    };
    if (id.startsWith("local:")) {
      void supabase
        .from("workspace_tabs")
        .insert({ workspace_id: workspaceId, user_id: userId, name: tab.name, filter: tab.filter, position: tab.position })
        .select(COLUMNS)
        .single()
        .then(({ data, error: err }) => {
          if (err || !data) {
            done(`Could not save the tab "${tab.name}": ${err?.message ?? "no row returned"}`);
            return;
          }
          const saved = data as unknown as Tab;
          if (closedLocal.current.delete(id)) {
            void supabase.from("workspace_tabs").delete().eq("id", saved.id).then(() => undefined);
            done(null);
            return;
          }
          // The row has its id now; whatever changed meanwhile stays (and is written by the `again` pass).
          tabsRef.current = tabsRef.current.map((t) => (t.id === id ? { ...t, id: saved.id } : t));
          if (activeRef.current === id) activeRef.current = saved.id;
          const pending = timers.current.get(id);
          if (pending != null) {
            window.clearTimeout(pending);
            timers.current.delete(id);
            again.current.add(id);
          }
          const current = tabsRef.current.find((t) => t.id === saved.id);
          if (current && (current.name !== tab.name || JSON.stringify(current.filter) !== JSON.stringify(tab.filter))) {
            again.current.add(id);
          }
          render();
          done(null, saved.id);
        });
    } else {
      void supabase
        .from("workspace_tabs")
        .update({ name: tab.name, filter: tab.filter })
        .eq("id", id)
        .select("id")
        .then(({ data, error: err }) => {
          if (!err && Array.isArray(data) && data.length === 0 && !disposed.current) {
            // The row is gone (closed in another browser): the tab is written again as a new row.
            localSeq += 1;
            const fresh = `local:${localSeq}`;
            tabsRef.current = tabsRef.current.map((t) => (t.id === id ? { ...t, id: fresh } : t));
            if (activeRef.current === id) activeRef.current = fresh;
            const pending = timers.current.get(id);
            if (pending != null) window.clearTimeout(pending);
            timers.current.delete(id);
            again.current.delete(id);
            inFlight.current.delete(id);
            render();
            persistRef.current(fresh);
            return;
          }
          done(err ? `Could not save the tab "${tab.name}": ${err.message}` : null);
        });
    }
  };

  const schedule = useCallback(
    (id: string, now = false) => {
      const pending = timers.current.get(id);
      if (pending != null) window.clearTimeout(pending);
      if (now) {
        timers.current.delete(id);
        persistRef.current(id);
        return;
      }
      timers.current.set(
        id,
        window.setTimeout(() => persistRef.current(id), DEBOUNCE_MS),
      );
      updateSaveState();
    },
    [updateSaveState],
  );

  useEffect(() => {
    disposed.current = false;
    let live = true;
    tabsRef.current = [];
    activeRef.current = null;
    setLoading(true);
    setError(null);
    void supabase
      .from("workspace_tabs")
      .select(COLUMNS)
      .eq("workspace_id", workspaceId)
      // an admin may read everyone's tabs: show only the user's own and the shared ones
      .or(`user_id.eq.${userId},user_id.is.null`)
      .order("position", { ascending: true })
      .order("created_at", { ascending: true })
      .then(({ data, error: err }) => {
        if (!live) return;
        setLoading(false);
        if (err) setError(`Could not load your tabs: ${err.message}`);
        const rows = ((data ?? []) as unknown as Tab[]).map((t) => ({ ...t, filter: t.filter ?? {} }));
        const tabs = rows.length ? rows : [localTab("All traffic", 0, userId)];
        tabsRef.current = tabs;
        activeRef.current = newestSelected(tabs, userId)?.id ?? null;
        render();
      });
    // Writes still waiting when the page goes away are sent at once (best effort).
    const flush = () => {
      for (const id of [...timers.current.keys()]) {
        window.clearTimeout(timers.current.get(id));
        persistRef.current(id);
      }
    };
    window.addEventListener("pagehide", flush);
    return () => {
      live = false;
      window.removeEventListener("pagehide", flush);
      flush();
      disposed.current = true;
    };
  }, [supabase, workspaceId, userId, render]);

  const replace = (id: string, change: (t: Tab) => Tab) => {
    tabsRef.current = tabsRef.current.map((t) => (t.id === id ? change(t) : t));
  };

  const select = useCallback(
    (id: string) => {
      if (activeRef.current === id) return;
      activeRef.current = id;
      const tab = tabsRef.current.find((t) => t.id === id);
      if (tab && tab.user_id === userId) {
        replace(id, (t) => ({ ...t, filter: { ...t.filter, selected_at: new Date().toISOString() } }));
        schedule(id);
      }
      render();
    },
    [userId, schedule, render],
  );

  const setFilter = useCallback(
    (update: (f: FilterState) => FilterState) => {
      const id = activeRef.current;
      if (!id) return;
      replace(id, (t) => ({ ...t, filter: update(t.filter) }));
      schedule(id);
      render();
    },
    [schedule, render],
  );

  const add = useCallback(() => {
    const position = tabsRef.current.reduce((m, t) => Math.max(m, t.position), -1) + 1;
    const names = new Set(tabsRef.current.map((t) => t.name));
    let n = tabsRef.current.length + 1;
    while (names.has(`Tab ${n}`)) n++;
    const tab = localTab(`Tab ${n}`, position, userId, { selected_at: new Date().toISOString() });
    tabsRef.current = [...tabsRef.current, tab];
    activeRef.current = tab.id;
    schedule(tab.id, true);
    render();
  }, [userId, schedule, render]);

  const rename = useCallback(
    (id: string, name: string) => {
      const clean = name.trim().slice(0, 100);
      if (!clean) return;
      replace(id, (t) => ({ ...t, name: clean }));
      schedule(id, true);
      render();
    },
    [schedule, render],
  );

  const close = useCallback(
    (id: string) => {
      const tabs = tabsRef.current;
      const index = tabs.findIndex((t) => t.id === id);
      if (index < 0) return;
      const tab = tabs[index];
      if (tab.user_id !== userId) return;
      const pending = timers.current.get(id);
      if (pending != null) window.clearTimeout(pending);
      timers.current.delete(id);
      let rest = tabs.filter((t) => t.id !== id);
      if (!rest.length) {
        // the last one closed: an unsaved "All traffic" (a row is written once its filter changes)
        rest = [localTab("All traffic", 0, userId)];
        tabsRef.current = rest;
        activeRef.current = rest[0].id;
      } else {
        tabsRef.current = rest;
        if (activeRef.current === id) {
          const next = rest[Math.min(index, rest.length - 1)];
          activeRef.current = null;
          select(next.id);
        }
      }
      if (id.startsWith("local:")) {
        if (inFlight.current.has(id)) closedLocal.current.add(id);
      } else {
        inFlight.current.add(id);
        updateSaveState();
        void supabase
          .from("workspace_tabs")
          .delete()
          .eq("id", id)
          .then(({ error: err }) => {
            inFlight.current.delete(id);
            if (err) {
              setError(`Could not close the tab "${tab.name}": ${err.message}`);
              setSaveState("error");
            }
            updateSaveState();
          });
      }
      render();
    },
    [supabase, userId, select, updateSaveState, render],
  );

  const tabs = tabsRef.current;
  const active = tabs.find((t) => t.id === activeRef.current) ?? tabs[0] ?? null;
  return {
    tabs,
    active,
    loading,
    error,
    saveState,
    own,
    setFilter,
    select,
    add,
    rename,
    close,
    dismissError: () => {
      setError(null);
      setSaveState("saved");
      updateSaveState();
    },
  };
}
