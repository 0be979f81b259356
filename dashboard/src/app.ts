// What every view of the signed-in app shares: the supabase-js client, the session, who the user is (whoami():
// role, grants_all, capabilities per section) and the selected workspace. Views read it with useApp(); a control
// that changes something is shown only when can(section, "edit") is true (the database refuses anyway).
import type { Session, SupabaseClient } from "@supabase/supabase-js";
import { createContext, useContext } from "react";
import type { Me } from "./session";
import type { Workspace } from "./workspaces";

export type Section =
  | "devices"
  | "entries"
  | "services"
  | "tags"
  | "global"
  | "users"
  | "workspaces"
  | "breakpoints"
  | "agents";

export interface AppState {
  supabase: SupabaseClient;
  session: Session;
  me: Me | null;
  workspaces: Workspace[];
  workspaceId: string;
  /** True when the user's role grants section:action (from whoami(); false until it is known). */
  can: (section: Section, action: "view" | "edit") => boolean;
}

export const AppContext = createContext<AppState | null>(null);

export function useApp(): AppState {
  const state = useContext(AppContext);
  if (!state) throw new Error("useApp() outside the signed-in app");
  return state;
}

export function capabilityCheck(me: Me | null): AppState["can"] {
  return (section, action) => {
    if (!me) return false;
    if (me.grants_all) return true;
    return me.capabilities?.[section]?.[action] === true;
  };
}
