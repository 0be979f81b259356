// The Breakpoints page (issue 17): the workspace's rules (phase, method, host and path globs, device, enabled),
// created, edited, toggled and deleted by people with breakpoints:edit; and the flows they pause, live from
// ws:<workspace_id>, each with a countdown to the proxy's timeout and an editor (request: method, URL, headers,
// body; response: status, headers, body) whose Continue sends the changes through continue_breakpoint.
// `/breakpoints?id=<rule id>` opens that rule (wouter navigation, so the back button works).
import { useEffect, useMemo, useState } from "react";
import { useLocation, useSearch } from "wouter";
import { useApp } from "../app";
import { ErrorNote, Loading, Page, useLiveTopic, useQuery } from "../ui";
import {
  EMPTY_DRAFT,
  OUTCOME_TEXT,
  RULE_COLUMNS,
  type FlowDraft,
  type FlowEvent,
  type Rule,
  type RuleDraft,
  bodyEditable,
  columnsOf,
  describeFlow,
  draftOf,
  editsOf,
  flowDraftOf,
  messageOf,
  secondsLeft,
} from "./breakpoints-data";
import { type PausedFlows, usePausedFlows } from "./breakpoints-live";
import "./breakpoints.css";

interface DeviceName {
  uuid: string;
  name: string;
}

export function BreakpointsPage() {
  const { supabase, session, workspaceId, can } = useApp();
  const canEdit = can("breakpoints", "edit");
  const search = useSearch();
  const [, navigate] = useLocation();
  const openId = new URLSearchParams(search).get("id");
  const [creating, setCreating] = useState(false);

  const rules = useQuery<Rule[]>(
    () => supabase.from("breakpoints").select(RULE_COLUMNS).eq("workspace_id", workspaceId).order("created_at"),
    [supabase, workspaceId],
  );
  // Another person's new, changed or deleted rule: the database announces it on breakpoints:<workspace_id>.
  useLiveTopic(`breakpoints:${workspaceId}`, () => rules.reload());
  const devices = useQuery<DeviceName[]>(
    () => supabase.from("devices").select("uuid,name").eq("workspace_id", workspaceId).order("name"),
    [supabase, workspaceId],
  );
  const deviceNames = useMemo(() => new Map((devices.data ?? []).map((d) => [d.uuid, d.name])), [devices.data]);
  const paused = usePausedFlows(supabase, session.access_token, workspaceId);

  const open = (id: string | null) => navigate(id ? `/breakpoints?id=${encodeURIComponent(id)}` : "/breakpoints");

  return (
    <Page
      title="Breakpoints"
      testId="page-breakpoints"
      actions={
        canEdit && (
          <button type="button" data-testid="rule-new" onClick={() => setCreating(true)} disabled={creating}>
            New rule
          </button>
        )
      }
    >
      <div className="bp">
        <PausedSection paused={paused} deviceNames={deviceNames} canEdit={canEdit} onOpenRule={open} />
        <section className="bp-section" aria-labelledby="bp-rules-title">
          <h2 id="bp-rules-title">Rules</h2>
          {creating && canEdit && (
            <RuleForm
              devices={devices.data ?? []}
              onCancel={() => setCreating(false)}
              onSaved={(rule) => {
                setCreating(false);
                rules.reload();
                open(rule.id);
              }}
            />
          )}
          <ErrorNote error={rules.error} testId="rules-error" />
          <ErrorNote error={devices.error} testId="devices-error" />
          {rules.loading && !rules.data ? (
            <Loading what="rules" />
          ) : (
            <RuleList
              rules={rules.data ?? []}
              devices={devices.data ?? []}
              deviceNames={deviceNames}
              openId={openId}
              canEdit={canEdit}
              onOpen={open}
              onChanged={rules.reload}
            />
          )}
        </section>
      </div>
    </Page>
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Paused flows

function useNow(active: boolean): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    if (!active) return;
    setNow(Date.now());
    const timer = window.setInterval(() => setNow(Date.now()), 1000); // a clock for the countdowns, not a poll
    return () => window.clearInterval(timer);
  }, [active]);
  return now;
}

function PausedSection({
  paused,
  deviceNames,
  canEdit,
  onOpenRule,
}: {
  paused: PausedFlows;
  deviceNames: Map<string, string>;
  canEdit: boolean;
  onOpenRule: (id: string) => void;
}) {
  const { flows, outcomes, live, error, refresh, resolved } = paused;
  const [selectedId, setSelectedId] = useState<string | null>(null);
  const now = useNow(!!flows?.length);
  const selected = flows?.find((f) => f.id === selectedId) ?? flows?.[0] ?? null;

  return (
    <section className="bp-section" aria-labelledby="bp-paused-title" data-testid="paused-section">
      <div className="bp-section-head">
        <h2 id="bp-paused-title">Paused flows</h2>
        <span className={`conn conn-${live === "live" ? "live" : live}`} data-testid="paused-live" data-state={live}>
          {live === "live" ? "live" : live === "connecting" ? "connecting…" : "not live"}
        </span>
        {live === "offline" && (
          <button type="button" data-testid="flows-refresh" onClick={refresh}>
            Refresh
          </button>
        )}
      </div>
      <ErrorNote error={error} testId="flows-error" />
      {outcomes.length > 0 && (
        <ul className="bp-outcomes" data-testid="flow-outcomes">
          {outcomes.map(({ event }) => (
            <li key={event.id} className="notice" data-testid="flow-outcome" data-event-id={event.id} data-outcome={event.outcome ?? ""}>
              <span className="bp-url">{describeFlow(event)}</span>: {OUTCOME_TEXT[event.outcome ?? ""] ?? event.outcome}
            </li>
          ))}
        </ul>
      )}
      {flows == null ? (
        <Loading what="paused flows" />
      ) : flows.length === 0 ? (
        <p className="empty bp-empty" data-testid="paused-empty">
          No flow is paused. A request or response that matches an enabled rule waits here until it is continued,
          aborted or times out.
        </p>
      ) : (
        <div className="bp-flows">
          <ul className="bp-flow-list" data-testid="paused-list" aria-label="Paused flows">
            {flows.map((f) => {
              const left = secondsLeft(f, now);
              return (
                <li key={f.id}>
                  <button
                    type="button"
                    className={`bp-flow${selected?.id === f.id ? " selected" : ""}`}
                    data-testid="paused-flow"
                    data-event-id={f.id}
                    aria-pressed={selected?.id === f.id}
                    onClick={() => setSelectedId(f.id)}
                  >
                    <span className="bp-phase">{f.phase}</span>
                    <span className="bp-url">{describeFlow(f)}</span>
                    <span className="muted">{deviceNames.get(f.device_uuid) ?? f.device_uuid.slice(0, 8)}</span>
                    <span className={`bp-countdown${left <= 10 ? " soon" : ""}`} data-testid="flow-countdown" data-seconds={left}>
                      {left > 0 ? `${left} s left` : "timing out…"}
                    </span>
                  </button>
                </li>
              );
            })}
          </ul>
          {selected && (
            <FlowEditor
              key={selected.id}
              event={selected}
              canEdit={canEdit}
              deviceName={deviceNames.get(selected.device_uuid)}
              onResolved={resolved}
              onOpenRule={onOpenRule}
            />
          )}
        </div>
      )}
    </section>
  );
}

function FlowEditor({
  event,
  canEdit,
  deviceName,
  onResolved,
  onOpenRule,
}: {
  event: FlowEvent;
  canEdit: boolean;
  deviceName: string | undefined;
  onResolved: (event: FlowEvent) => void;
  onOpenRule: (id: string) => void;
}) {
  const { supabase } = useApp();
  const [draft, setDraft] = useState<FlowDraft>(() => flowDraftOf(event));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const message = messageOf(event);
  const editable = bodyEditable(event);
  const check = editsOf(event, draft);
  const readOnly = !canEdit || busy;
  const set = (field: keyof FlowDraft) => (e: { target: { value: string } }) =>
    setDraft((d) => ({ ...d, [field]: e.target.value }));

  const resolve = async (action: "continue" | "abort") => {
    let edits: Record<string, unknown> | null = null;
    if (action === "continue") {
      if (check.error) {
        setError(check.error);
        return;
      }
      edits = check.edits;
    }
    setBusy(true);
    setError(null);
    const { data, error: failed } = await supabase.rpc("continue_breakpoint", {
      event_id: event.id,
      action: action === "abort" ? "abort" : edits ? "edit" : "continue",
      edits,
    });
    setBusy(false);
    if (failed) {
      setError(failed.message);
      return;
    }
    onResolved(data as FlowEvent);
  };

  return (
    <form
      className="bp-editor"
      data-testid="flow-editor"
      data-event-id={event.id}
      onSubmit={(e) => e.preventDefault()} // Enter in a field does not let the flow go: only the buttons do
    >
      <div className="bp-editor-head">
        <strong>
          Paused at the {event.phase} on {deviceName ?? event.device_uuid}
        </strong>
        {event.breakpoint_id && (
          <button type="button" className="bp-link" data-testid="flow-rule" onClick={() => onOpenRule(event.breakpoint_id!)}>
            its rule
          </button>
        )}
      </div>
      {event.phase === "request" ? (
        <div className="bp-line">
          <label className="bp-field bp-method">
            <span>Method</span>
            <input data-testid="edit-method" value={draft.method} onChange={set("method")} readOnly={readOnly} spellCheck={false} />
          </label>
          <label className="bp-field bp-grow">
            <span>URL</span>
            <input data-testid="edit-url" value={draft.url} onChange={set("url")} readOnly={readOnly} spellCheck={false} />
          </label>
        </div>
      ) : (
        <>
          <p className="bp-url muted" data-testid="edit-request-line">
            {describeFlow(event)}
          </p>
          <label className="bp-field bp-status">
            <span>Status</span>
            <input data-testid="edit-status" inputMode="numeric" value={draft.status} onChange={set("status")} readOnly={readOnly} />
          </label>
        </>
      )}
      <label className="bp-field">
        <span>Headers (one <code>Name: value</code> a line)</span>
        <textarea
          data-testid="edit-headers"
          rows={Math.min(10, Math.max(3, draft.headers.split("\n").length + 1))}
          value={draft.headers}
          onChange={set("headers")}
          readOnly={readOnly}
          spellCheck={false}
        />
      </label>
      <label className="bp-field">
        <span>
          Body
          {message.body_size != null && <span className="muted"> ({message.body_size} bytes)</span>}
        </span>
        {editable ? (
          <textarea data-testid="edit-body" rows={5} value={draft.body} onChange={set("body")} readOnly={readOnly} spellCheck={false} />
        ) : (
          <p className="notice" data-testid="edit-body-fixed">
            {message.body_b64 != null
              ? "A binary body: it goes on unchanged."
              : "The body is larger than the 64 KiB the snapshot keeps: it goes on unchanged."}
          </p>
        )}
      </label>
      <ErrorNote error={error} testId="flow-error" />
      {canEdit ? (
        <div className="bp-buttons">
          <button type="button" className="primary" data-testid="flow-continue" disabled={busy} onClick={() => void resolve("continue")}>
            {check.edits ? "Continue with edits" : "Continue"}
          </button>
          <button type="button" data-testid="flow-abort" disabled={busy} onClick={() => void resolve("abort")}>
            Abort
          </button>
          {busy && <span className="muted">Sending…</span>}
        </div>
      ) : (
        <p className="muted">Only people who may edit breakpoints continue or abort a flow.</p>
      )}
    </form>
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Rules

function RuleList({
  rules,
  devices,
  deviceNames,
  openId,
  canEdit,
  onOpen,
  onChanged,
}: {
  rules: Rule[];
  devices: DeviceName[];
  deviceNames: Map<string, string>;
  openId: string | null;
  canEdit: boolean;
  onOpen: (id: string | null) => void;
  onChanged: () => void;
}) {
  const { supabase } = useApp();
  const [error, setError] = useState<string | null>(null);
  const [toggling, setToggling] = useState<string | null>(null);

  useEffect(() => {
    if (!openId) return;
    const row = document.querySelector(`[data-testid="rule-row"][data-rule-id="${CSS.escape(openId)}"]`);
    row?.scrollIntoView({ block: "nearest", behavior: "smooth" });
  }, [openId, rules]);

  const toggle = async (rule: Rule) => {
    setToggling(rule.id);
    setError(null);
    const { error: failed } = await supabase.from("breakpoints").update({ enabled: !rule.enabled }).eq("id", rule.id);
    setToggling(null);
    if (failed) setError(failed.message);
    onChanged();
  };

  const missing = openId && !rules.some((r) => r.id === openId);
  return (
    <>
      <ErrorNote error={error} testId="rule-toggle-error" />
      {missing && (
        <p className="notice" data-testid="rule-missing">
          No rule {openId} here: it was deleted, or it belongs to another workspace.
        </p>
      )}
      {rules.length === 0 ? (
        <p className="empty" data-testid="rules-empty">
          No rules in this workspace.{canEdit ? " Add one with New rule." : ""}
        </p>
      ) : (
        <ul className="bp-rules" data-testid="rule-list">
          {rules.map((rule) => {
            const isOpen = rule.id === openId;
            return (
              <li
                key={rule.id}
                className={`bp-rule${isOpen ? " open" : ""}${rule.enabled ? "" : " off"}`}
                data-testid="rule-row"
                data-rule-id={rule.id}
                data-open={isOpen ? "true" : "false"}
              >
                <div className="bp-rule-head">
                  <button
                    type="button"
                    className="bp-rule-summary"
                    data-testid="rule-open"
                    aria-expanded={isOpen}
                    onClick={() => onOpen(isOpen ? null : rule.id)}
                  >
                    <span className="bp-phase">{rule.phase}</span>
                    <span className="bp-method-tag">{rule.method ?? "any method"}</span>
                    <span className="bp-pattern" data-testid="rule-pattern">
                      {rule.host_pattern}
                      {rule.path_pattern}
                    </span>
                    <span className="muted" data-testid="rule-device-name">
                      {rule.device_uuid ? (deviceNames.get(rule.device_uuid) ?? rule.device_uuid.slice(0, 8)) : "any device"}
                    </span>
                  </button>
                  {canEdit ? (
                    <label className="bp-toggle">
                      <input
                        type="checkbox"
                        data-testid="rule-enabled"
                        checked={rule.enabled}
                        disabled={toggling === rule.id}
                        onChange={() => void toggle(rule)}
                      />
                      <span>{rule.enabled ? "on" : "off"}</span>
                    </label>
                  ) : (
                    <span className={`bp-state${rule.enabled ? " on" : ""}`} data-testid="rule-state">
                      {rule.enabled ? "on" : "off"}
                    </span>
                  )}
                </div>
                {isOpen &&
                  (canEdit ? (
                    <RuleForm
                      key={`${rule.id}:${rule.enabled}`}
                      rule={rule}
                      devices={devices}
                      onCancel={() => onOpen(null)}
                      onSaved={() => onChanged()}
                      onDeleted={() => {
                        onChanged();
                        onOpen(null);
                      }}
                    />
                  ) : (
                    <RuleDetail rule={rule} deviceNames={deviceNames} />
                  ))}
              </li>
            );
          })}
        </ul>
      )}
    </>
  );
}

function RuleDetail({ rule, deviceNames }: { rule: Rule; deviceNames: Map<string, string> }) {
  return (
    <dl className="bp-detail" data-testid="rule-detail">
      <dt>Phase</dt>
      <dd>{rule.phase}</dd>
      <dt>Method</dt>
      <dd>{rule.method ?? "any"}</dd>
      <dt>Host</dt>
      <dd>{rule.host_pattern}</dd>
      <dt>Path</dt>
      <dd>{rule.path_pattern}</dd>
      <dt>Device</dt>
      <dd>{rule.device_uuid ? (deviceNames.get(rule.device_uuid) ?? rule.device_uuid) : "any"}</dd>
      <dt>Enabled</dt>
      <dd>{rule.enabled ? "yes" : "no"}</dd>
      <dt>Created</dt>
      <dd>{new Date(rule.created_at).toLocaleString()}</dd>
    </dl>
  );
}

function RuleForm({
  rule,
  devices,
  onCancel,
  onSaved,
  onDeleted,
}: {
  rule?: Rule;
  devices: DeviceName[];
  onCancel: () => void;
  onSaved: (rule: Rule) => void;
  onDeleted?: () => void;
}) {
  const { supabase, workspaceId } = useApp();
  const [draft, setDraft] = useState<RuleDraft>(() => (rule ? draftOf(rule) : EMPTY_DRAFT));
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [confirming, setConfirming] = useState(false);
  const [saved, setSaved] = useState(false);
  const set = <K extends keyof RuleDraft>(field: K, value: RuleDraft[K]) => {
    setSaved(false);
    setDraft((d) => ({ ...d, [field]: value }));
  };

  const save = async () => {
    setBusy(true);
    setError(null);
    const columns = columnsOf(draft);
    const answer = rule
      ? await supabase.from("breakpoints").update(columns).eq("id", rule.id).select(RULE_COLUMNS).single()
      : await supabase
          .from("breakpoints")
          .insert({ ...columns, workspace_id: workspaceId })
          .select(RULE_COLUMNS)
          .single();
    setBusy(false);
    if (answer.error) {
      setError(answer.error.message);
      return;
    }
    setSaved(true);
    onSaved(answer.data as unknown as Rule);
  };

  const remove = async () => {
    if (!rule) return;
    setBusy(true);
    setError(null);
    const { error: failed } = await supabase.from("breakpoints").delete().eq("id", rule.id);
    setBusy(false);
    if (failed) {
      setError(failed.message);
      return;
    }
    onDeleted?.();
  };

  return (
    <form
      className="bp-form"
      data-testid="rule-form"
      data-mode={rule ? "edit" : "new"}
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      {!rule && <strong>New rule</strong>}
      <div className="bp-form-grid">
        <label className="bp-field">
          <span>Phase</span>
          <select data-testid="rule-phase" value={draft.phase} onChange={(e) => set("phase", e.target.value as RuleDraft["phase"])}>
            <option value="request">request</option>
            <option value="response">response</option>
          </select>
        </label>
        <label className="bp-field">
          <span>Method</span>
          <input
            data-testid="rule-method"
            placeholder="any"
            value={draft.method}
            onChange={(e) => set("method", e.target.value.toUpperCase())}
            pattern="[A-Za-z]{0,32}"
            title="Letters only, like GET; empty for any method"
            spellCheck={false}
          />
        </label>
        <label className="bp-field">
          <span>Host pattern</span>
          <input
            data-testid="rule-host"
            placeholder="*"
            value={draft.host_pattern}
            onChange={(e) => set("host_pattern", e.target.value)}
            maxLength={253}
            spellCheck={false}
          />
        </label>
        <label className="bp-field">
          <span>Path pattern</span>
          <input
            data-testid="rule-path"
            placeholder="*"
            value={draft.path_pattern}
            onChange={(e) => set("path_pattern", e.target.value)}
            maxLength={2048}
            spellCheck={false}
          />
        </label>
        <label className="bp-field">
          <span>Device</span>
          <select data-testid="rule-device" value={draft.device_uuid} onChange={(e) => set("device_uuid", e.target.value)}>
            <option value="">any device</option>
            {devices.map((d) => (
              <option key={d.uuid} value={d.uuid}>
                {d.name}
              </option>
            ))}
            {draft.device_uuid && !devices.some((d) => d.uuid === draft.device_uuid) && (
              <option value={draft.device_uuid}>{draft.device_uuid}</option>
            )}
          </select>
        </label>
        <label className="bp-check">
          <input
            type="checkbox"
            data-testid="rule-form-enabled"
            checked={draft.enabled}
            onChange={(e) => set("enabled", e.target.checked)}
          />
          <span>Enabled</span>
        </label>
      </div>
      <p className="muted bp-hint">
        Patterns are globs: <code>*</code> any run of characters, <code>?</code> one; the host ignores case, the path
        is matched without its query.
      </p>
      <ErrorNote error={error} testId="rule-error" />
      <div className="bp-buttons">
        <button type="submit" className="primary" data-testid="rule-save" disabled={busy}>
          {rule ? "Save" : "Create"}
        </button>
        <button type="button" data-testid="rule-cancel" disabled={busy} onClick={onCancel}>
          {rule ? "Close" : "Cancel"}
        </button>
        {saved && rule && (
          <span className="muted" data-testid="rule-saved">
            Saved.
          </span>
        )}
        <span className="spacer" />
        {rule &&
          (confirming ? (
            <>
              <button type="button" className="danger" data-testid="rule-delete-confirm" disabled={busy} onClick={() => void remove()}>
                Delete this rule
              </button>
              <button type="button" data-testid="rule-delete-cancel" onClick={() => setConfirming(false)}>
                Keep
              </button>
            </>
          ) : (
            <button type="button" data-testid="rule-delete" disabled={busy} onClick={() => setConfirming(true)}>
              Delete…
            </button>
          ))}
      </div>
    </form>
  );
}
