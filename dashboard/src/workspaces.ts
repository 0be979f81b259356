// The workspaces the signed-in user may read (RLS: members read theirs, admins all) and the one selected,
// remembered in localStorage per user.
import type { SupabaseClient } from "@supabase/supabase-js";
import { useEffect, useState } from "react";

export interface Workspace {
  id: string;
  slug: string;
  name: string;
}

const storageKey = (userId: string) => `busymate.workspace.${userId}`;

export function useWorkspaces(supabase: SupabaseClient, userId: string) {
  const [workspaces, setWorkspaces] = useState<Workspace[] | null>(null);
  const [error, setError] = useState<string | null>(null);
  const [selected, setSelected] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    setWorkspaces(null);
    setError(null);
    void supabase
      .from("workspaces")
      .select("id,slug,name")
      .order("name")
      .then(({ data, error: err }) => {
        if (!live) return;
        if (err) {
          setError(`Could not list the workspaces: ${err.message}`);
          setWorkspaces([]);
          return;
        }
        const list = (data ?? []) as Workspace[];
        setWorkspaces(list);
        const remembered = localStorage.getItem(storageKey(userId));
        setSelected(list.find((w) => w.id === remembered)?.id ?? list[0]?.id ?? null);
      });
    return () => {
      live = false;
    };
  }, [supabase, userId]);

  const select = (id: string) => {
    localStorage.setItem(storageKey(userId), id);
    setSelected(id);
  };
  return { workspaces, error, selected, select };
}
