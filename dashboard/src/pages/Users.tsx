// The Users and roles page (issue 17): every profile (email, name, role, workspaces) for a role with users:view,
// and for an admin (grants_all: what set_user_role, add_workspace_member and remove_workspace_member require) a
// role picker and workspace membership. `/users?id=<user id>` opens that user; opening one pushes history, so
// the back button returns. Errors are the database's own words (e.g. "the last admin cannot be demoted").
import { useMemo, useState } from "react";
import { Link, useLocation, useSearch } from "wouter";
import { useApp } from "../app";
import { ErrorNote, Loading, Page, useQuery } from "../ui";
import "./users.css";

interface Profile {
  id: string;
  email: string | null;
  display_name: string;
  role: string;
  created_at: string;
}

interface Role {
  name: string;
  description: string;
  grants_all: boolean;
}

interface Membership {
  workspace_id: string;
  user_id: string;
}

export function UsersPage() {
  const { me, can } = useApp();
  if (!me) {
    return (
      <Page title="Users and roles" testId="page-users">
        <Loading what="your role" />
      </Page>
    );
  }
  if (!can("users", "view")) {
    return (
      <Page title="Users and roles" testId="page-users">
        <div className="error users-forbidden" role="alert" data-testid="users-forbidden">
          <strong>Not allowed.</strong> Your role ({me.role ?? "none"}) cannot see the users: it needs the users:view
          capability. Ask an admin.
        </div>
      </Page>
    );
  }
  return <UsersList />;
}

function UsersList() {
  const { supabase, me, workspaces } = useApp();
  const admin = me?.grants_all === true;
  const selectedId = new URLSearchParams(useSearch()).get("id");
  const [, navigate] = useLocation();
  const [filter, setFilter] = useState("");

  const profiles = useQuery<Profile[]>(
    () => supabase.from("profiles").select("id,email,display_name,role,created_at").order("email"),
    [supabase],
  );
  const roles = useQuery<Role[]>(() => supabase.from("roles").select("name,description,grants_all").order("name"), [supabase]);
  const members = useQuery<Membership[]>(() => supabase.from("workspace_members").select("workspace_id,user_id"), [supabase]);

  const wsName = useMemo(() => new Map(workspaces.map((w) => [w.id, w.name])), [workspaces]);
  const byUser = useMemo(() => {
    const map = new Map<string, string[]>();
    for (const m of members.data ?? []) map.set(m.user_id, [...(map.get(m.user_id) ?? []), m.workspace_id]);
    return map;
  }, [members.data]);

  const needle = filter.trim().toLowerCase();
  const list = (profiles.data ?? []).filter(
    (p) =>
      !needle ||
      (p.email ?? "").toLowerCase().includes(needle) ||
      p.display_name.toLowerCase().includes(needle) ||
      p.role.toLowerCase().includes(needle),
  );
  const selected = profiles.data?.find((p) => p.id === selectedId) ?? null;
  const open = (id: string) => navigate(`/users?id=${encodeURIComponent(id)}`);

  return (
    <Page
      title="Users and roles"
      testId="page-users"
      actions={
        <input
          type="search"
          className="users-filter"
          data-testid="users-filter"
          aria-label="Filter users"
          placeholder="Filter by email, name or role"
          value={filter}
          onChange={(e) => setFilter(e.target.value)}
        />
      }
    >
      {!admin && (
        <p className="notice" data-testid="users-readonly">
          You can see the users; only an admin can change roles and workspace membership.
        </p>
      )}
      <ErrorNote error={profiles.error ?? roles.error ?? members.error} testId="users-error" />
      {profiles.loading && !profiles.data && <Loading what="the users" />}
      <div className={`users-split${selectedId ? " with-detail" : ""}`}>
        <div className="users-list-wrap">
          {profiles.data && (
            <table className="users-list" data-testid="users-list">
              <thead>
                <tr>
                  <th>Email</th>
                  <th className="users-name-col">Name</th>
                  <th>Role</th>
                  <th className="users-ws-col">Workspaces</th>
                </tr>
              </thead>
              <tbody>
                {list.map((p) => (
                  <tr
                    key={p.id}
                    data-testid="user-row"
                    data-user-id={p.id}
                    className={p.id === selectedId ? "selected" : undefined}
                    tabIndex={0}
                    aria-selected={p.id === selectedId}
                    onClick={() => open(p.id)}
                    onKeyDown={(e) => {
                      const row = e.currentTarget;
                      if (e.key === "Enter") open(p.id);
                      else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
                        e.preventDefault();
                        const next = e.key === "ArrowDown" ? row.nextElementSibling : row.previousElementSibling;
                        if (next instanceof HTMLElement && next.dataset.userId) next.focus();
                      }
                    }}
                  >
                    <td className="users-email">{p.email ?? "(no email)"}</td>
                    <td className="users-name-col">{p.display_name}</td>
                    <td>
                      <span className="users-role" data-testid="user-row-role">
                        {p.role}
                      </span>
                    </td>
                    <td className="users-ws-col muted">
                      {(byUser.get(p.id) ?? []).map((w) => wsName.get(w) ?? w.slice(0, 8)).join(", ") || "none"}
                    </td>
                  </tr>
                ))}
                {list.length === 0 && (
                  <tr>
                    <td colSpan={4} className="muted">
                      {needle ? "No user matches the filter." : "No users."}
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          )}
        </div>
        {selectedId && profiles.data && (
          <aside className="users-detail" data-testid="user-detail">
            {selected ? (
              <UserDetail
                key={selected.id}
                user={selected}
                roles={roles.data ?? []}
                memberOf={byUser.get(selected.id) ?? []}
                onChanged={() => {
                  profiles.reload();
                  members.reload();
                }}
              />
            ) : (
              <p className="empty" data-testid="user-not-found">
                No user {selectedId} (or you cannot see them). <Link href="/users">All users</Link>
              </p>
            )}
          </aside>
        )}
      </div>
    </Page>
  );
}

function UserDetail({
  user,
  roles,
  memberOf,
  onChanged,
}: {
  user: Profile;
  roles: Role[];
  memberOf: string[];
  onChanged: () => void;
}) {
  const { supabase, me, workspaces } = useApp();
  const admin = me?.grants_all === true;
  const [, navigate] = useLocation();
  const [role, setRole] = useState(user.role);
  const [addTo, setAddTo] = useState("");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [done, setDone] = useState<string | null>(null);
  const wsName = new Map(workspaces.map((w) => [w.id, w.name]));
  const notIn = workspaces.filter((w) => !memberOf.includes(w.id));
  const roleInfo = roles.find((r) => r.name === user.role);

  const act = async (what: string, run: () => PromiseLike<{ error: { message: string } | null }>) => {
    setBusy(true);
    setError(null);
    setDone(null);
    const { error: err } = await run();
    setBusy(false);
    if (err) {
      setError(err.message);
      return;
    }
    setDone(what);
    onChanged();
  };

  return (
    <div className="users-detail-body">
      <div className="users-detail-head">
        <h2 data-testid="user-detail-email">{user.email ?? "(no email)"}</h2>
        <span className="spacer" />
        <button type="button" data-testid="user-detail-close" onClick={() => navigate("/users")}>
          Close
        </button>
      </div>
      <dl className="users-facts">
        <dt>Name</dt>
        <dd data-testid="user-detail-name">{user.display_name || <span className="muted">(none)</span>}</dd>
        <dt>Role</dt>
        <dd>
          <span className="users-role" data-testid="user-detail-role">
            {user.role}
          </span>{" "}
          {roleInfo && <span className="muted">{roleInfo.description}</span>}
          {user.id === me?.id && <span className="muted"> (you)</span>}
        </dd>
        <dt>Joined</dt>
        <dd>{new Date(user.created_at).toLocaleString()}</dd>
        <dt>Id</dt>
        <dd>
          <code className="users-id">{user.id}</code>
        </dd>
      </dl>

      {admin && (
        <div className="users-edit">
          <label htmlFor="user-role-select" className="users-label">
            Change the role
          </label>
          <div className="users-row">
            <select id="user-role-select" data-testid="user-role-select" value={role} onChange={(e) => setRole(e.target.value)}>
              {roles.map((r) => (
                <option key={r.name} value={r.name}>
                  {r.name}
                  {r.grants_all ? " (everything)" : ""}
                </option>
              ))}
            </select>
            <button
              type="button"
              className="primary"
              data-testid="user-role-save"
              disabled={busy || role === user.role}
              onClick={() =>
                void act(`Role changed to ${role}.`, () => supabase.rpc("set_user_role", { user_id: user.id, role }))
              }
            >
              Change role
            </button>
          </div>
          {user.id === me?.id && role !== user.role && (
            <p className="muted">Your own role: the page reflects it after a reload.</p>
          )}
        </div>
      )}

      <h3>Workspaces</h3>
      <ul className="users-ws" data-testid="user-workspaces">
        {memberOf.map((w) => (
          <li key={w} data-testid="user-workspace" data-workspace-id={w}>
            <span>{wsName.get(w) ?? w}</span>
            {admin && (
              <button
                type="button"
                data-testid={`remove-membership-${w}`}
                disabled={busy}
                onClick={() =>
                  void act(`Removed from ${wsName.get(w) ?? w}.`, () =>
                    supabase.rpc("remove_workspace_member", { workspace_id: w, user_id: user.id }),
                  )
                }
              >
                Remove
              </button>
            )}
          </li>
        ))}
        {memberOf.length === 0 && <li className="muted">Not a member of any workspace you can see.</li>}
      </ul>
      {admin && notIn.length > 0 && (
        <div className="users-row">
          <select data-testid="add-membership-select" aria-label="Workspace to add to" value={addTo} onChange={(e) => setAddTo(e.target.value)}>
            <option value="">Add to a workspace…</option>
            {notIn.map((w) => (
              <option key={w.id} value={w.id}>
                {w.name}
              </option>
            ))}
          </select>
          <button
            type="button"
            data-testid="add-membership"
            disabled={busy || !addTo}
            onClick={() =>
              void act(`Added to ${wsName.get(addTo) ?? addTo}.`, () =>
                supabase.rpc("add_workspace_member", { workspace_id: addTo, user_id: user.id }),
              ).then(() => setAddTo(""))
            }
          >
            Add
          </button>
        </div>
      )}
      <ErrorNote error={error} testId="user-action-error" />
      {done && (
        <p className="notice" role="status" data-testid="user-action-done">
          {done}
        </p>
      )}
    </div>
  );
}
