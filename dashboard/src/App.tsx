// The app shell: sign-in when there is no session; otherwise the header (navigation, workspace switcher, user,
// role, sign out) and the page of the current route. Routes are real paths under the app's base
// (`/devices?uuid=…`, `/services?id=…`, `/tags?id=…`, `/users?id=…`, `/breakpoints?id=…`, `/?entry=…`), so a deep
// link opens its item and the browser's back button works (wouter over the History API).
import type { Session, SupabaseClient } from "@supabase/supabase-js";
import { useMemo } from "react";
import { Link, Route, Router, Switch, useLocation } from "wouter";
import { AppContext, type AppState, capabilityCheck } from "./app";
import { BusyBroProvider, BusyBroToggle } from "./busybro/BusyBro";
import { BreakpointsPage } from "./pages/Breakpoints";
import { DevicesPage } from "./pages/Devices";
import { ServicesPage } from "./pages/Services";
import { SettingsPage } from "./pages/Settings";
import { TagsPage } from "./pages/Tags";
import { UsersPage } from "./pages/Users";
import { PAGES, appBase } from "./routing";
import { SignIn } from "./SignIn";
import { Traffic } from "./Traffic";
import { useMe, useSession } from "./session";
import { useWorkspaces } from "./workspaces";

export function App({ supabase }: { supabase: SupabaseClient }) {
  const { ready, session } = useSession(supabase);
  if (!ready) return <p className="boot">Loading…</p>;
  if (!session) return <SignIn supabase={supabase} />;
  return (
    <Router base={appBase()}>
      <BusyBroProvider supabase={supabase} session={session}>
        <SignedIn supabase={supabase} session={session} />
      </BusyBroProvider>
    </Router>
  );
}

function SignedIn({ supabase, session }: { supabase: SupabaseClient; session: Session }) {
  const userId = session.user.id;
  const { me, error: meError } = useMe(supabase, userId);
  const { workspaces, error: wsError, selected, select } = useWorkspaces(supabase, userId);
  const [location] = useLocation();
  const can = useMemo(() => capabilityCheck(me), [me]);
  const state: AppState | null = useMemo(
    () =>
      selected && workspaces
        ? { supabase, session, me, workspaces, workspaceId: selected, can }
        : null,
    [supabase, session, me, workspaces, selected, can],
  );

  return (
    <div className="app">
      <header className="header">
        <strong className="brand">Busymate</strong>
        <nav className="nav" aria-label="Pages">
          {PAGES.filter((p) => p.path === "/" || can(p.section, "view")).map((p) => (
            <Link
              key={p.path}
              href={p.path}
              data-testid={`nav-${p.label.toLowerCase()}`}
              className={location === p.path ? "active" : undefined}
              aria-current={location === p.path ? "page" : undefined}
            >
              {p.label}
            </Link>
          ))}
        </nav>
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
        <BusyBroToggle />
        <span className="user" title={me?.email ?? undefined}>
          {me?.display_name && <span data-testid="user-name">{me.display_name}</span>}
          <span data-testid="user-email" className={me?.display_name ? "muted" : undefined}>
            {me?.email ?? session.user.email}
          </span>
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
      {state && (
        <AppContext.Provider value={state}>
          <main className="main">
            <Switch>
              <Route path="/devices" component={DevicesPage} />
              <Route path="/breakpoints" component={BreakpointsPage} />
              <Route path="/services" component={ServicesPage} />
              <Route path="/tags" component={TagsPage} />
              <Route path="/users" component={UsersPage} />
              <Route path="/settings" component={SettingsPage} />
              <Route path="/">
                <Traffic key={state.workspaceId} supabase={supabase} workspaceId={state.workspaceId} accessToken={session.access_token} />
              </Route>
              <Route>
                <p className="empty" data-testid="not-found">
                  No such page. <Link href="/">Back to the traffic</Link>
                </p>
              </Route>
            </Switch>
          </main>
        </AppContext.Provider>
      )}
    </div>
  );
}
