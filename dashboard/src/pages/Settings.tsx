// The Settings page (issue 17): the global settings (one row every device starts from) as a form for the keys
// Busymate knows plus raw JSON for the rest, and a device's overrides beside its effective settings
// (effective_settings(): the overrides laid over the global row), each key marked override or global.
// Writes go through the RPCs: set_global_settings and set_device_settings need an admin (grants_all);
// set_global_connection_type needs global:edit. Everyone else reads. Live: settings:global and
// settings_device:<workspace_id> (database broadcasts) make the page read again; unsaved edits are kept and a notice says
// the stored settings changed.
import { useEffect, useMemo, useState } from "react";
import { useLocation, useSearch } from "wouter";
import { useApp } from "../app";
import { ErrorNote, Loading, Page, type Query, useLiveTopic, useQuery } from "../ui";
import {
  KNOWN,
  KNOWN_KEYS,
  type KnownKey,
  type Settings,
  compose,
  fieldText,
  humanBytes,
  otherKeys,
  parseObject,
  pretty,
  stable,
} from "./settings-model";
import "./settings.css";

interface GlobalRow {
  settings: Settings;
  updated_at: string;
}

export function SettingsPage() {
  const { supabase } = useApp();
  const global = useQuery<GlobalRow | null>(
    () => supabase.from("settings_global").select("settings,updated_at").maybeSingle(),
    [supabase],
  );
  const [globalTick, setGlobalTick] = useState(0);
  useLiveTopic("settings:global", () => {
    global.reload();
    setGlobalTick((t) => t + 1);
  });
  return (
    <Page title="Settings" testId="page-settings">
      <GlobalSettings query={global} />
      <DeviceSettings global={global.data?.settings ?? null} globalTick={globalTick} />
    </Page>
  );
}

function fieldsOf(settings: Settings): Record<string, string> {
  const fields: Record<string, string> = {};
  for (const known of KNOWN_KEYS) fields[known.key] = fieldText(known, settings[known.key]);
  return fields;
}

function rawOf(settings: Settings): string {
  const rest = otherKeys(settings);
  return Object.keys(rest).length ? pretty(rest) : "{}";
}

function GlobalSettings({ query }: { query: Query<GlobalRow | null> }) {
  const { supabase, me, can } = useApp();
  const admin = me?.grants_all === true;
  const typeOnly = !admin && can("global", "edit"); // set_global_connection_type only
  const [base, setBase] = useState<Settings | null>(null);
  const [fields, setFields] = useState<Record<string, string>>({});
  const [raw, setRaw] = useState("{}");
  const [stale, setStale] = useState(false);
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);

  const composed = useMemo(() => compose(fields, raw), [fields, raw]);
  const dirty = base != null && ("error" in composed || stable(composed.value) !== stable(base));

  const load = (settings: Settings) => {
    setBase(settings);
    setFields(fieldsOf(settings));
    setRaw(rawOf(settings));
    setStale(false);
  };

  const server = query.data?.settings ?? null;
  useEffect(() => {
    if (!server) return;
    if (base != null && stable(server) !== stable(base)) setSaved(false); // "Saved." was about the last version
    if (base == null || !dirty) load(server);
    else if (stable(server) !== stable(base)) setStale(true);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [server]);

  const save = async () => {
    setError(null);
    setSaved(false);
    if ("error" in composed) {
      setError(composed.error);
      return;
    }
    setSaving(true);
    const answer = admin
      ? await supabase.rpc("set_global_settings", { settings: composed.value })
      : await supabase.rpc("set_global_connection_type", { connection_type: fields.connection_type ?? "" });
    setSaving(false);
    if (answer.error) {
      setError(answer.error.message);
      return;
    }
    load(answer.data as Settings);
    setSaved(true);
  };

  if (query.loading && !query.data) return <Loading what="the global settings" />;
  if (query.error) return <ErrorNote error={query.error} testId="global-settings-error" />;
  if (!server) return <p className="empty">There are no global settings (the database has no row).</p>;
  if (!base) return <Loading what="the global settings" />;

  const editable = (key: string) => admin || (typeOnly && key === "connection_type");
  return (
    <section className="settings-block" data-testid="global-settings" aria-labelledby="global-settings-title">
      <div className="settings-head">
        <h2 id="global-settings-title">Global settings</h2>
        <span className="muted">Every device starts from these. Updated {new Date(query.data!.updated_at).toLocaleString()}.</span>
      </div>
      {!admin && !typeOnly && (
        <p className="notice" data-testid="settings-readonly">
          You can read these settings; only an admin can change them.
        </p>
      )}
      {typeOnly && (
        <p className="notice" data-testid="settings-readonly">
          Your role may change the connection type; only an admin can change the rest.
        </p>
      )}
      {stale && (
        <p className="notice" data-testid="global-settings-stale">
          The stored settings were changed elsewhere while you were editing.{" "}
          <button type="button" data-testid="global-settings-reload" onClick={() => load(server)}>
            Discard my edits and load them
          </button>
        </p>
      )}
      <div className="settings-form">
        {KNOWN_KEYS.map((known) => (
          <KnownField
            key={known.key}
            known={known}
            value={fields[known.key] ?? ""}
            disabled={!editable(known.key)}
            onChange={(text) => {
              setSaved(false);
              setFields((f) => ({ ...f, [known.key]: text }));
            }}
          />
        ))}
      </div>
      <label className="settings-raw">
        <span className="settings-label">Other settings (JSON)</span>
        <span className="muted">Keys Busymate itself does not read, kept for devices and tools; a JSON object.</span>
        <textarea
          data-testid="global-settings-json"
          value={raw}
          readOnly={!admin}
          spellCheck={false}
          rows={Math.min(12, Math.max(3, raw.split("\n").length + 1))}
          onChange={(e) => {
            setSaved(false);
            setRaw(e.target.value);
          }}
        />
      </label>
      <ErrorNote error={error} testId="global-settings-save-error" />
      {"error" in composed && dirty && !error && <p className="muted settings-hint">{composed.error}</p>}
      {(admin || typeOnly) && (
        <div className="settings-actions">
          <button
            type="button"
            className="primary"
            data-testid="save-global-settings"
            disabled={!dirty || saving}
            onClick={() => void save()}
          >
            {saving ? "Saving…" : "Save global settings"}
          </button>
          <button type="button" data-testid="revert-global-settings" disabled={!dirty || saving} onClick={() => load(base)}>
            Revert
          </button>
          {saved && (
            <span className="muted" data-testid="global-settings-saved" role="status">
              Saved.
            </span>
          )}
        </div>
      )}
    </section>
  );
}

function KnownField({
  known,
  value,
  disabled,
  onChange,
}: {
  known: KnownKey;
  value: string;
  disabled: boolean;
  onChange: (text: string) => void;
}) {
  const id = `setting-${known.key}`;
  let control;
  if (known.kind === "choice" || known.kind === "bool") {
    const choices = known.kind === "bool" ? ["true", "false"] : (known.choices ?? []);
    control = (
      <select id={id} data-testid={id} value={value} disabled={disabled} onChange={(e) => onChange(e.target.value)}>
        <option value="">(not set)</option>
        {choices.map((c) => (
          <option key={c} value={c}>
            {known.kind === "bool" ? (c === "true" ? "on" : "off") : c}
          </option>
        ))}
        {value !== "" && !choices.includes(value) && <option value={value}>{value}</option>}
      </select>
    );
  } else {
    const n = Number(value);
    control = (
      <span className="settings-bytes">
        <input
          id={id}
          data-testid={id}
          inputMode="numeric"
          value={value}
          placeholder="not set: 1 MiB"
          disabled={disabled}
          onChange={(e) => onChange(e.target.value)}
        />
        {value !== "" && Number.isFinite(n) && n > 0 && <span className="muted">= {humanBytes(n)}</span>}
      </span>
    );
  }
  return (
    <div className="settings-field">
      <label htmlFor={id} className="settings-label">
        {known.label} <code>{known.key}</code>
      </label>
      {control}
      <span className="muted settings-help">{known.help}</span>
    </div>
  );
}

interface DeviceRow {
  uuid: string;
  name: string;
}

interface OverrideRow {
  overrides: Settings;
  updated_at: string;
}

function DeviceSettings({ global, globalTick }: { global: Settings | null; globalTick: number }) {
  const { supabase, can, workspaceId } = useApp();
  const [, navigate] = useLocation();
  const asked = new URLSearchParams(useSearch()).get("device");

  const devices = useQuery<DeviceRow[]>(
    () => supabase.from("devices").select("uuid,name").eq("workspace_id", workspaceId).order("name"),
    [supabase, workspaceId],
  );
  const list = devices.data ?? [];
  const selected = asked ?? list[0]?.uuid ?? null;
  const known = list.find((d) => d.uuid === selected) ?? null;
  // A device added, renamed or removed elsewhere shows in the picker (devices:<workspace_id>: devices:view).
  useLiveTopic(can("devices", "view") ? `devices:${workspaceId}` : null, () => devices.reload());

  return (
    <section className="settings-block" data-testid="device-settings" aria-labelledby="device-settings-title">
      <div className="settings-head">
        <h2 id="device-settings-title">Device overrides</h2>
        <span className="muted">A device's overrides replace the global keys they name; the rest comes from the global settings.</span>
      </div>
      {devices.loading && !devices.data && <Loading what="the devices" />}
      <ErrorNote error={devices.error} testId="devices-error" />
      {devices.data && list.length === 0 && (
        <p className="empty" data-testid="device-settings-empty">
          This workspace has no devices you can see.
        </p>
      )}
      {list.length > 0 && (
        <label className="settings-device-pick">
          <span className="settings-label">Device</span>
          <select
            data-testid="settings-device"
            value={selected ?? ""}
            onChange={(e) => navigate(`/settings?device=${encodeURIComponent(e.target.value)}`)}
          >
            {!known && selected && <option value={selected}>{selected} (not in this workspace)</option>}
            {list.map((d) => (
              <option key={d.uuid} value={d.uuid}>
                {d.name}
              </option>
            ))}
          </select>
        </label>
      )}
      {selected && <DevicePane key={selected} uuid={selected} global={global} globalTick={globalTick} />}
    </section>
  );
}

function DevicePane({ uuid, global, globalTick }: { uuid: string; global: Settings | null; globalTick: number }) {
  const { supabase, me, can, workspaceId } = useApp();
  const admin = me?.grants_all === true;
  const overrides = useQuery<OverrideRow | null>(
    () =>
      supabase.from("settings_device").select("overrides,updated_at").eq("device_uuid", uuid).maybeSingle(),
    [supabase, uuid],
  );
  const effective = useQuery<Settings | null>(
    () =>
      supabase.rpc("effective_settings", { device_uuid: uuid }),
    [supabase, uuid, globalTick],
  );

  const canWatchDevices = can("devices", "view");
  useLiveTopic(canWatchDevices ? `settings_device:${workspaceId}` : null, (_event, payload) => {
    const rec = (payload.record ?? payload.old_record) as { device_uuid?: string } | null;
    if (rec?.device_uuid && rec.device_uuid === uuid) {
      overrides.reload();
      effective.reload();
    }
  });

  const stored: Settings = overrides.data?.overrides ?? {};
  const storedText = pretty(stored);
  const [draft, setDraft] = useState(storedText);
  const [draftBase, setDraftBase] = useState(storedText);
  const [saving, setSaving] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [saved, setSaved] = useState(false);
  const parsed = parseObject(draft);
  const dirty = "error" in parsed || stable(parsed.value) !== stable(JSON.parse(draftBase));

  const [stale, setStale] = useState(false);
  useEffect(() => {
    // New stored overrides (the first read, or a change made elsewhere): take them unless the user is editing.
    if (!dirty) {
      setDraft(storedText);
      setDraftBase(storedText);
      setStale(false);
    } else if (storedText !== draftBase) setStale(true);
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [storedText]);

  const save = async (value: Settings) => {
    setError(null);
    setSaved(false);
    setSaving(true);
    const answer = await supabase.rpc("set_device_settings", { device_uuid: uuid, overrides: value });
    setSaving(false);
    if (answer.error) {
      setError(answer.error.message);
      return;
    }
    const text = pretty((answer.data as OverrideRow).overrides ?? value);
    setDraft(text);
    setDraftBase(text);
    setStale(false);
    setSaved(true);
    overrides.reload();
    effective.reload();
  };

  const eff = effective.data ?? null;
  // The known keys always (unset ones say so), then the rest by name.
  const keys = eff
    ? [...new Set([...KNOWN, ...Object.keys(eff)])].sort(
        (a, b) => Number(!KNOWN.has(a)) - Number(!KNOWN.has(b)) || a.localeCompare(b),
      )
    : [];

  return (
    <div className="settings-split">
      <div className="settings-pane">
        <h3>Overrides (JSON)</h3>
        {overrides.error && <ErrorNote error={overrides.error} testId="device-overrides-error" />}
        <textarea
          data-testid="device-overrides"
          value={draft}
          readOnly={!admin}
          spellCheck={false}
          rows={Math.min(14, Math.max(4, draft.split("\n").length + 1))}
          onChange={(e) => {
            setSaved(false);
            setDraft(e.target.value);
          }}
        />
        {"error" in parsed && <p className="muted settings-hint">{parsed.error}</p>}
        {stale && (
          <p className="notice" data-testid="device-overrides-stale">
            These overrides were changed elsewhere while you were editing.{" "}
            <button
              type="button"
              onClick={() => {
                setDraft(storedText);
                setDraftBase(storedText);
                setStale(false);
              }}
            >
              Discard my edits and load them
            </button>
          </p>
        )}
        {!admin && (
          <p className="muted" data-testid="device-settings-readonly">
            Only an admin can change a device's overrides.
          </p>
        )}
        <ErrorNote error={error} testId="device-settings-save-error" />
        {admin && (
          <div className="settings-actions">
            <button
              type="button"
              className="primary"
              data-testid="save-device-overrides"
              disabled={!dirty || saving || "error" in parsed}
              onClick={() => {
                if (!("error" in parsed)) void save(parsed.value);
              }}
            >
              {saving ? "Saving…" : "Save overrides"}
            </button>
            <button
              type="button"
              data-testid="clear-device-overrides"
              disabled={saving || Object.keys(stored).length === 0}
              onClick={() => void save({})}
            >
              Clear overrides
            </button>
            {saved && (
              <span className="muted" data-testid="device-settings-saved" role="status">
                Saved.
              </span>
            )}
          </div>
        )}
        {admin && (
          <p className="muted settings-help">
            e.g. <code>{'{"connection_type": "vpn", "body_cap_bytes": 65536}'}</code>
          </p>
        )}
      </div>
      <div className="settings-pane">
        <h3>Effective settings</h3>
        {effective.loading && !effective.data && <Loading what="the effective settings" />}
        <ErrorNote error={effective.error} testId="effective-error" />
        {!effective.loading && !effective.error && eff == null && (
          <p className="empty">This device is not visible to you.</p>
        )}
        {eff && (
          <table className="settings-effective" data-testid="effective-settings">
            <thead>
              <tr>
                <th>Key</th>
                <th>Value</th>
                <th>From</th>
              </tr>
            </thead>
            <tbody>
              {keys.map((k) => {
                const fromOverride = Object.prototype.hasOwnProperty.call(stored, k);
                const globalValue = global?.[k];
                if (!Object.prototype.hasOwnProperty.call(eff, k)) {
                  return (
                    <tr key={k} data-testid={`effective-row-${k}`} className="unset">
                      <td>
                        <code>{k}</code>
                      </td>
                      <td data-testid="effective-value" className="muted">
                        not set{k === "body_cap_bytes" ? " (1 MiB)" : ""}
                      </td>
                      <td data-testid="effective-source">
                        <span className="settings-source default">default</span>
                      </td>
                    </tr>
                  );
                }
                return (
                  <tr key={k} data-testid={`effective-row-${k}`} className={fromOverride ? "from-override" : undefined}>
                    <td>
                      <code>{k}</code>
                    </td>
                    <td data-testid="effective-value" className="settings-value">
                      {JSON.stringify(eff[k])}
                      {fromOverride && globalValue !== undefined && stable(globalValue) !== stable(eff[k]) && (
                        <span className="muted settings-was"> (global: {JSON.stringify(globalValue)})</span>
                      )}
                    </td>
                    <td data-testid="effective-source">
                      <span className={`settings-source ${fromOverride ? "override" : "global"}`}>
                        {fromOverride ? "override" : "global"}
                      </span>
                    </td>
                  </tr>
                );
              })}
              {keys.length === 0 && (
                <tr>
                  <td colSpan={3} className="muted">
                    No settings at all.
                  </td>
                </tr>
              )}
            </tbody>
          </table>
        )}
      </div>
    </div>
  );
}
