// Device names of a workspace by uuid, for the traffic list; fetched again when a row names a device not known yet.
import type { SupabaseClient } from "@supabase/supabase-js";
import { useEffect, useRef, useState } from "react";
import type { FeedStore } from "./feed";

export function useDeviceNames(
  supabase: SupabaseClient,
  workspaceId: string,
  store: FeedStore,
  version: number,
): Map<string, string> {
  const [names, setNames] = useState<Map<string, string>>(new Map());
  const asked = useRef<Set<string>>(new Set()); // uuids a fetch was made for (a device may be invisible: no loop)
  const inFlight = useRef(false);
  const again = useRef(false); // an unknown device showed up while a fetch was under way
  const firstId = useRef<string | null>(null);
  const checked = useRef(0); // rows of the store already looked at

  const load = useRef<() => void>(() => undefined);
  load.current = () => {
    if (inFlight.current) {
      again.current = true;
      return;
    }
    inFlight.current = true;
    void supabase
      .from("devices")
      .select("uuid,name")
      .eq("workspace_id", workspaceId)
      .then(({ data }) => {
        inFlight.current = false;
        if (again.current) {
          again.current = false;
          load.current();
        }
        const map = new Map<string, string>();
        for (const d of (data ?? []) as { uuid: string; name: string }[]) map.set(d.uuid, d.name);
        setNames(map);
      });
  };

  useEffect(() => {
    asked.current = new Set();
    checked.current = 0;
    setNames(new Map());
    load.current();
  }, [supabase, workspaceId]);

  useEffect(() => {
    // Rows put before the held ones (the initial load) or a new store: look at every row again.
    const first = store.rows.length ? store.rows[0].id : null;
    if (first !== firstId.current || checked.current > store.rows.length) checked.current = 0;
    firstId.current = first;
    let unknown = false;
    for (let i = checked.current; i < store.rows.length; i++) {
      const uuid = store.rows[i].device_uuid;
      if (!names.has(uuid) && !asked.current.has(uuid)) {
        asked.current.add(uuid);
        unknown = true;
      }
    }
    checked.current = store.rows.length;
    if (unknown) load.current();
  }, [store, version, names]);

  return names;
}
