// The BusyBro agents registry on the Service groups page: every agent (emoji, name, instructions), read with
// agents:view; with agents:edit, new / edit / delete straight on public.busybro_agents (its RLS is the gate;
// deleting an agent also unlinks it from every group).
import { useState } from "react";
import { useApp } from "../app";
import { ErrorNote, Loading, type Query } from "../ui";
import type { Agent } from "./services-data";

export function AgentsPanel({ agents, onChanged }: { agents: Query<Agent[]>; onChanged: () => void }) {
  const { can } = useApp();
  const canEdit = can("agents", "edit");
  const [editing, setEditing] = useState<string | null>(null); // an agent id, "new", or null
  const changed = () => {
    setEditing(null);
    agents.reload();
    onChanged();
  };
  return (
    <section className="agents-panel" data-testid="agents-panel">
      <div className="catalog-card-head">
        <h2>BusyBro agents</h2>
        <span className="spacer" />
        {canEdit && editing !== "new" && (
          <button type="button" data-testid="agent-new" onClick={() => setEditing("new")}>
            New agent
          </button>
        )}
      </div>
      <p className="muted">Specialist lenses a service group can link (one primary plus extras).</p>
      {agents.data == null && !agents.error && <Loading what="agents" />}
      {editing === "new" && <AgentForm agent={null} onDone={changed} onCancel={() => setEditing(null)} />}
      {agents.data?.length === 0 && editing !== "new" && <p className="empty">No agents yet.</p>}
      <ul className="agents-list" data-testid="agents-list">
        {agents.data?.map((a) =>
          editing === a.id ? (
            <li key={a.id}>
              <AgentForm agent={a} onDone={changed} onCancel={() => setEditing(null)} />
            </li>
          ) : (
            <li key={a.id} className="agent-row" data-testid="agent-row" data-id={a.id}>
              <span className="catalog-icon" aria-hidden="true">
                {a.emoji}
              </span>
              <span className="catalog-row-text">
                <strong>{a.name}</strong>
                <span className="muted agent-instructions">{a.instructions || "No instructions."}</span>
              </span>
              {canEdit && (
                <button type="button" data-testid="agent-edit" onClick={() => setEditing(a.id)}>
                  Edit
                </button>
              )}
            </li>
          ),
        )}
      </ul>
    </section>
  );
}

function AgentForm({ agent, onDone, onCancel }: { agent: Agent | null; onDone: () => void; onCancel: () => void }) {
  const { supabase } = useApp();
  const [name, setName] = useState(agent?.name ?? "");
  const [emoji, setEmoji] = useState(agent?.emoji ?? "🤖");
  const [instructions, setInstructions] = useState(agent?.instructions ?? "");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [confirmDelete, setConfirmDelete] = useState(false);

  const save = async () => {
    setBusy(true);
    setError(null);
    const row = { name: name.trim(), emoji: emoji.trim() || "🤖", instructions };
    const { error: saveError } = agent
      ? await supabase.from("busybro_agents").update(row).eq("id", agent.id)
      : await supabase.from("busybro_agents").insert(row);
    setBusy(false);
    if (saveError) setError(saveError.message);
    else onDone();
  };
  const remove = async () => {
    if (!agent) return;
    setBusy(true);
    setError(null);
    const { error: deleteError } = await supabase.from("busybro_agents").delete().eq("id", agent.id);
    setBusy(false);
    if (deleteError) setError(deleteError.message);
    else onDone();
  };

  return (
    <form
      className="catalog-card agent-form"
      data-testid="agent-form"
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      <div className="catalog-fields">
        <label className="catalog-icon-field">
          Emoji
          <input data-testid="agent-emoji" value={emoji} maxLength={16} onChange={(e) => setEmoji(e.target.value)} />
        </label>
        <label>
          Name
          <input data-testid="agent-name" value={name} maxLength={100} required onChange={(e) => setName(e.target.value)} />
        </label>
      </div>
      <label className="agent-instructions-field">
        Instructions (the lens BusyBro adopts)
        <textarea
          data-testid="agent-instructions"
          value={instructions}
          maxLength={20000}
          rows={4}
          onChange={(e) => setInstructions(e.target.value)}
        />
      </label>
      <ErrorNote error={error} testId="agent-error" />
      <div className="catalog-actions">
        <button type="submit" className="primary" data-testid="agent-save" disabled={busy}>
          {agent ? "Save agent" : "Create agent"}
        </button>
        <button type="button" onClick={onCancel}>
          Cancel
        </button>
        <span className="spacer" />
        {agent &&
          (confirmDelete ? (
            <button type="button" className="danger" data-testid="agent-delete-confirm" disabled={busy} onClick={() => void remove()}>
              Delete {agent.name} (unlinks it everywhere)
            </button>
          ) : (
            <button type="button" data-testid="agent-delete" onClick={() => setConfirmDelete(true)}>
              Delete…
            </button>
          ))}
      </div>
    </form>
  );
}
