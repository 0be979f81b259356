// The signed-in user: the supabase-js session (persisted in localStorage by supabase-js) and whoami()'s answer
// (email, display name, role).
import type { Session, SupabaseClient } from "@supabase/supabase-js";
import { useEffect, useState } from "react";

export interface Me {
  id: string;
  email: string | null;
  display_name: string | null;
  role: string | null;
  grants_all: boolean;
  /** {section: {view, edit}} from the role (grants_all passes everything). */
  capabilities: Record<string, { view: boolean; edit: boolean }> | null;
  /** The devices this user owns (uuids). */
  devices: string[];
}

export interface SessionState {
  ready: boolean; // the stored session was read
  session: Session | null;
}

export function useSession(supabase: SupabaseClient): SessionState {
  const [state, setState] = useState<SessionState>({ ready: false, session: null });
  useEffect(() => {
    let live = true;
    void supabase.auth.getSession().then(({ data }) => {
      if (live) setState({ ready: true, session: data.session });
    });
    const { data } = supabase.auth.onAuthStateChange((_event, session) => {
      if (live) setState({ ready: true, session });
    });
    return () => {
      live = false;
      data.subscription.unsubscribe();
    };
  }, [supabase]);
  return state;
}

export function useMe(supabase: SupabaseClient, userId: string | null): { me: Me | null; error: string | null } {
  const [me, setMe] = useState<Me | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    setMe(null);
    setError(null);
    if (!userId) return;
    let live = true;
    void supabase.rpc("whoami").then(({ data, error: err }) => {
      if (!live) return;
      if (err) setError(err.message);
      else setMe(data as Me);
    });
    return () => {
      live = false;
    };
  }, [supabase, userId]);
  return { me, error };
}
