// The Service groups page (issue 17, Settings → Services): the groups (name, icon, domains) and, per group, its
// BusyBro agents (one primary plus ordered extras). `/services?id=<id>` opens a group (`?id=new` a new one);
// selecting pushes a history entry, so back returns. Writes go through upsert_service_group,
// delete_service_group and set_service_group_agents (services:edit); the agents registry below the groups is
// read with agents:view and written directly with agents:edit. The list follows `service_groups:all` live.
import { useEffect, useState } from "react";
import { useApp } from "../app";
import { ErrorNote, Loading, Page, useLiveTopic, useQuery } from "../ui";
import { AgentsPanel } from "./services-agents";
import { type Agent, type AgentLink, type ServiceGroup, groupAgentIds, move } from "./services-data";
import { FormFooter, ListEditor, onListKeys, useIdParam, useScrollIntoView } from "./services-shared";

export function ServicesPage() {
  const { supabase, can } = useApp();
  const [id, select] = useIdParam("/services");
  const canEdit = can("services", "edit");
  const canAgents = can("agents", "view");
  const groups = useQuery<ServiceGroup[]>(
    () => supabase.from("service_groups").select("id,name,icon,domains,created_at").order("name"),
    [supabase],
  );
  const links = useQuery<AgentLink[]>(
    () => supabase.from("service_group_agents").select("service_group_id,agent_id,is_primary,position").order("position"),
    [supabase],
  );
  const agents = useQuery<Agent[]>(
    () =>
      canAgents
        ? supabase.from("busybro_agents").select("id,name,emoji,instructions,created_at").order("name")
        : Promise.resolve({ data: [], error: null }),
    [supabase, canAgents],
  );
  useLiveTopic("service_groups:all", () => {
    groups.reload();
    links.reload();
  });
  const [filter, setFilter] = useState("");
  const [created, setCreated] = useState<string | null>(null); // a new item's form reopens saying "Saved."

  const creating = id === "new" && canEdit;
  const selected = id && !creating ? (groups.data?.find((g) => g.id === id) ?? null) : null;
  const missing = id && !creating && groups.data && !groups.loading && !selected;
  const needle = filter.trim().toLowerCase();
  const shown = (groups.data ?? []).filter(
    (g) => !needle || g.name.toLowerCase().includes(needle) || g.domains.some((d) => d.toLowerCase().includes(needle)),
  );

  return (
    <Page
      title="Service groups"
      testId="page-services"
      actions={
        canEdit && (
          <button type="button" data-testid="service-new" onClick={() => select("new")}>
            New service group
          </button>
        )
      }
    >
      <ErrorNote error={groups.error ?? links.error ?? agents.error} />
      <div className={`catalog${id ? " has-selection" : ""}`}>
        <div className="catalog-list">
          <input
            type="search"
            className="catalog-filter"
            aria-label="Filter service groups"
            placeholder="Filter by name or domain"
            data-testid="service-filter"
            value={filter}
            onChange={(e) => setFilter(e.target.value)}
          />
          {groups.data == null && !groups.error && <Loading what="service groups" />}
          {groups.data?.length === 0 && <p className="empty">No service groups yet.</p>}
          <ul data-testid="service-list" onKeyDown={onListKeys}>
            {shown.map((g) => (
              <GroupRow
                key={g.id}
                group={g}
                agents={groupAgentIds(links.data, g.id).length}
                selected={g.id === id}
                onSelect={() => {
                  setCreated(null);
                  select(g.id);
                }}
              />
            ))}
          </ul>
        </div>
        <div className="catalog-detail">
          {missing && (
            <p className="notice" data-testid="service-missing">
              No service group {id} (it may have been deleted, or you may not see it).
            </p>
          )}
          {!id && groups.data != null && groups.data.length > 0 && (
            <p className="empty">Choose a service group to see its domains and agents.</p>
          )}
          {(creating || selected) && (
            <GroupDetail
              key={selected?.id ?? "new"}
              group={selected}
              agents={agents.data ?? []}
              agentIds={selected ? groupAgentIds(links.data, selected.id) : []}
              canEdit={canEdit}
              justCreated={created != null && created === id}
              onSaved={(savedId) => {
                if (savedId !== id) setCreated(savedId);
                groups.reload();
                links.reload();
                if (savedId !== id) select(savedId);
              }}
              onDeleted={() => {
                groups.reload();
                links.reload();
                select(null);
              }}
              onClose={() => select(null)}
            />
          )}
        </div>
      </div>
      {canAgents && <AgentsPanel agents={agents} onChanged={() => links.reload()} />}
    </Page>
  );
}

function GroupRow({ group, agents, selected, onSelect }: { group: ServiceGroup; agents: number; selected: boolean; onSelect: () => void }) {
  const ref = useScrollIntoView<HTMLLIElement>(selected);
  const sample = group.domains.slice(0, 3).join(", ") + (group.domains.length > 3 ? ` +${group.domains.length - 3}` : "");
  return (
    <li ref={ref}>
      <button
        type="button"
        className={`catalog-row${selected ? " selected" : ""}`}
        aria-current={selected ? "true" : undefined}
        data-testid="service-row"
        data-id={group.id}
        onClick={onSelect}
      >
        <span className="catalog-icon" aria-hidden="true">
          {group.icon || "▫️"}
        </span>
        <span className="catalog-row-text">
          <strong data-testid="service-row-name">{group.name}</strong>
          <span className="muted">{sample || "no domains"}</span>
        </span>
        <span className="muted catalog-count" title="agents">
          {agents ? `${agents} agent${agents === 1 ? "" : "s"}` : ""}
        </span>
      </button>
    </li>
  );
}

function GroupDetail({
  group,
  agents,
  agentIds,
  canEdit,
  justCreated,
  onSaved,
  onDeleted,
  onClose,
}: {
  group: ServiceGroup | null;
  agents: Agent[];
  agentIds: string[];
  canEdit: boolean;
  justCreated: boolean;
  onSaved: (id: string) => void;
  onDeleted: () => void;
  onClose: () => void;
}) {
  const { supabase } = useApp();
  const [name, setName] = useState(group?.name ?? "");
  const [icon, setIcon] = useState(group?.icon ?? "");
  const [domains, setDomains] = useState<string[]>(group?.domains ?? []);
  const [primary, setPrimary] = useState(agentIds[0] ?? "");
  const [extras, setExtras] = useState<string[]>(agentIds.slice(1));
  const [agentsTouched, setAgentsTouched] = useState(false);
  const storedAgents = agentIds.join(",");
  useEffect(() => {
    // the stored links may arrive after the form opened (a new group, a reload): follow them until edited
    if (agentsTouched) return;
    setPrimary(agentIds[0] ?? "");
    setExtras(agentIds.slice(1));
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [storedAgents]);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(justCreated);
  useEffect(() => {
    if (justCreated) setSaved(true); // the page may learn it after the form opened (the URL changes first)
  }, [justCreated]);
  const editExtras = (next: string[]) => {
    setAgentsTouched(true);
    setExtras(next);
  };
  const byId = new Map(agents.map((a) => [a.id, a]));
  const agentLabel = (agentId: string) => {
    const a = byId.get(agentId);
    return a ? `${a.emoji} ${a.name}` : agentId;
  };

  if (!canEdit && group) {
    return (
      <article className="catalog-card" data-testid="service-detail" data-id={group.id}>
        <div className="catalog-card-head">
          <h2>
            <span aria-hidden="true">{group.icon}</span> <span data-testid="service-detail-name">{group.name}</span>
          </h2>
          <span className="spacer" />
          <button type="button" className="catalog-close" data-testid="service-close" onClick={onClose}>
            Close
          </button>
        </div>
        <h3>Domains</h3>
        {group.domains.length === 0 ? (
          <p className="muted">No domains.</p>
        ) : (
          <ul className="chips" data-testid="service-domains">
            {group.domains.map((d) => (
              <li key={d}>
                <code>{d}</code>
              </li>
            ))}
          </ul>
        )}
        <h3>BusyBro agents</h3>
        {agentIds.length === 0 ? (
          <p className="muted">No agents linked.</p>
        ) : (
          <ol className="agent-order" data-testid="service-agents">
            {agentIds.map((a, i) => (
              <li key={a} data-testid="service-agent" data-id={a}>
                {agentLabel(a)} {i === 0 && <span className="badge">primary</span>}
              </li>
            ))}
          </ol>
        )}
      </article>
    );
  }

  const desired = primary ? [primary, ...extras.filter((x) => x !== primary)] : [];
  const agentsChanged = desired.join(",") !== agentIds.join(",");
  const addable = agents.filter((a) => a.id !== primary && !extras.includes(a.id));

  const save = async () => {
    setError(null);
    setSaved(false);
    if (!primary && extras.length) {
      setError("Choose a primary agent before adding extras (the first agent of a group is its primary).");
      return;
    }
    setBusy(true);
    try {
      const trimmedIcon = icon.trim();
      const { data, error: upsertError } = await supabase.rpc("upsert_service_group", {
        name,
        domains,
        icon: group ? trimmedIcon : trimmedIcon || null,
        id: group?.id ?? null,
      });
      if (upsertError) {
        setError(upsertError.message);
        return;
      }
      const row = data as ServiceGroup;
      if (agentsChanged) {
        const { error: agentsError } = await supabase.rpc("set_service_group_agents", {
          service_group_id: row.id,
          agent_ids: desired,
        });
        if (agentsError) {
          setError(`The group was saved, but its agents were not: ${agentsError.message}`);
          onSaved(row.id);
          return;
        }
      }
      setSaved(true);
      setAgentsTouched(false);
      onSaved(row.id);
    } finally {
      setBusy(false);
    }
  };

  const remove = async () => {
    if (!group) return;
    setBusy(true);
    setError(null);
    const { error: deleteError } = await supabase.rpc("delete_service_group", { id: group.id });
    setBusy(false);
    if (deleteError) setError(deleteError.message);
    else onDeleted();
  };

  return (
    <form
      className="catalog-card"
      data-testid="service-detail"
      data-id={group?.id ?? "new"}
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      <div className="catalog-card-head">
        <h2>{group ? "Edit service group" : "New service group"}</h2>
        <span className="spacer" />
        <button type="button" className="catalog-close" data-testid="service-close" onClick={onClose}>
          Close
        </button>
      </div>
      <div className="catalog-fields">
        <label>
          Name
          <input data-testid="service-name" value={name} maxLength={100} onChange={(e) => setName(e.target.value)} />
        </label>
        <label className="catalog-icon-field">
          Icon
          <input
            data-testid="service-icon"
            value={icon}
            maxLength={16}
            placeholder="🍔"
            onChange={(e) => setIcon(e.target.value)}
          />
        </label>
      </div>
      <h3>Domains</h3>
      <ListEditor
        items={domains}
        onChange={setDomains}
        testId="service-domain"
        label="Add a domain"
        placeholder="api.example.com or *.example.com"
      />
      <h3>BusyBro agents</h3>
      {agents.length === 0 ? (
        <p className="muted" data-testid="service-no-agents">
          No agents exist yet. They are made in the agents list below (agents:edit).
        </p>
      ) : (
        <div className="agent-editor" data-testid="service-agents">
          <label>
            Primary agent (the lens BusyBro takes for this group)
            <select data-testid="service-primary" value={primary} onChange={(e) => {
                setAgentsTouched(true);
                setPrimary(e.target.value);
              }}>
              <option value="">None</option>
              {agents.map((a) => (
                <option key={a.id} value={a.id}>
                  {a.emoji} {a.name}
                </option>
              ))}
            </select>
          </label>
          <div className="muted">Extras, in order (the pool BusyBro delegates to):</div>
          {extras.length === 0 && <p className="muted">No extras.</p>}
          <ol className="agent-order">
            {extras.map((a, i) => (
              <li key={a} data-testid="service-extra" data-id={a} className={a === primary ? "muted" : undefined}>
                <span className="agent-name">
                  {agentLabel(a)}
                  {a === primary && " (the primary; dropped on save)"}
                </span>
                <button
                  type="button"
                  className="icon-button"
                  aria-label={`Move ${agentLabel(a)} up`}
                  data-testid="service-extra-up"
                  disabled={i === 0}
                  onClick={() => editExtras(move(extras, i, -1))}
                >
                  ↑
                </button>
                <button
                  type="button"
                  className="icon-button"
                  aria-label={`Move ${agentLabel(a)} down`}
                  data-testid="service-extra-down"
                  disabled={i === extras.length - 1}
                  onClick={() => editExtras(move(extras, i, 1))}
                >
                  ↓
                </button>
                <button
                  type="button"
                  className="icon-button"
                  aria-label={`Remove ${agentLabel(a)}`}
                  data-testid="service-extra-remove"
                  onClick={() => editExtras(extras.filter((x) => x !== a))}
                >
                  ×
                </button>
              </li>
            ))}
          </ol>
          {addable.length > 0 && (
            <select
              data-testid="service-extra-add"
              aria-label="Add an extra agent"
              value=""
              disabled={!primary}
              onChange={(e) => e.target.value && editExtras([...extras, e.target.value])}
            >
              <option value="">{primary ? "Add an extra agent…" : "Choose a primary first"}</option>
              {addable.map((a) => (
                <option key={a.id} value={a.id}>
                  {a.emoji} {a.name}
                </option>
              ))}
            </select>
          )}
        </div>
      )}
      <FormFooter
        prefix="service"
        error={error}
        saved={saved}
        busy={busy}
        existing={group ? group.name : null}
        onDelete={() => void remove()}
      />
    </form>
  );
}
