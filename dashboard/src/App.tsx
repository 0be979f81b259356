// The app shell: sign-in when there is no session; otherwise the header (user, role, workspace switcher,
// sign out) and the traffic of the selected workspace.
import type { Session, SupabaseClient } from "@supabase/supabase-js";
import { SignIn } from "./SignIn";
import { Traffic } from "./Traffic";
import { useMe, useSession } from "./session";
import { useWorkspaces } from "./workspaces";

export function App({ supabase }: { supabase: SupabaseClient }) {
  const { ready, session } = useSession(supabase);
  if (!ready) return <p className="boot">Loading…</p>;
  if (!session) return <SignIn supabase={supabase} />;
  return <SignedIn supabase={supabase} session={session} />;
}

function SignedIn({ supabase, session }: { supabase: SupabaseClient; session: Session }) {
  const userId = session.user.id;
  const { me, error: meError } = useMe(supabase, userId);
  const { workspaces, error: wsError, selected, select } = useWorkspaces(supabase, userId);

  return (
    <div className="app">
      <header className="header">
        <strong className="brand">Busymate</strong>
        <select
          data-testid="workspace-switcher"
          aria-label="Workspace"
          value={selected ?? ""}
          disabled={!workspaces?.length}
          onChange={(e) => select(e.target.value)}
        >
          {workspaces == null && <option value="">Loading workspaces…</option>}
          {workspaces?.length === 0 && <option value="">No workspace</option>}
          {workspaces?.map((w) => (
            <option key={w.id} value={w.id}>
              {w.name}
            </option>
          ))}
        </select>
        <span className="spacer" />
        <span className="user" title={me?.display_name ?? undefined}>
          <span data-testid="user-email">{me?.email ?? session.user.email}</span>
          <span className="role" data-testid="user-role">
            {me?.role ?? (meError ? "?" : "…")}
          </span>
        </span>
        <button type="button" data-testid="sign-out" onClick={() => void supabase.auth.signOut()}>
          Sign out
        </button>
      </header>
      {meError && <div className="error" role="alert">Could not read your role: {meError}</div>}
      {wsError && <div className="error" role="alert">{wsError}</div>}
      {workspaces?.length === 0 && !wsError && (
        <p className="empty">You are not a member of any workspace yet. An admin can add you.</p>
      )}
      {selected && (
        <Traffic key={selected} supabase={supabase} workspaceId={selected} accessToken={session.access_token} />
      )}
    </div>
  );
}
