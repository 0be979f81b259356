// One device's panel: what it reports, and (when allowed) rename, connection type, VPN on/off, a Live Activity
// message, open a sheet in its app, a new activation code, unpair and remove (both with a confirm step). Each
// command shows its result or the API's own error message.
import { useEffect, useState } from "react";
import { useApp } from "../app";
import { ActivationCard, type Activation } from "./devicesAdd";
import { type Device, type DeviceStatus, type Fleet, type FleetDevice, ago, lastSeen } from "./devicesData";

const CONNECTION_TYPES = ["proxy", "vpn", "pac", "cdp"] as const;
const SHEETS = ["settings", "cert", "pac"] as const;

type Outcome = { ok: true; text: string } | { ok: false; text: string } | null;

export function DeviceDetail({
  device,
  owner,
  now,
  fleet,
  onClose,
}: {
  device: FleetDevice;
  owner: string;
  now: number;
  fleet: Fleet;
  onClose: () => void;
}) {
  const { supabase, me, can } = useApp();
  const isAdmin = me?.grants_all === true;
  const isOwner = !!me && device.owner_user_id === me.id;
  const mayCommand = can("devices", "edit") && (isAdmin || isOwner);
  const [name, setName] = useState(device.name);
  const [connection, setConnection] = useState<string>(device.connection_type);
  const [message, setMessage] = useState(device.status?.live_activity_message ?? "");
  const [sheet, setSheet] = useState<string>(SHEETS[0]);
  const [busy, setBusy] = useState<string | null>(null);
  const [outcome, setOutcome] = useState<Outcome>(null);
  const [confirm, setConfirm] = useState<"unpair" | "remove" | null>(null);
  const [activation, setActivation] = useState<Activation | null>(null);
  const seen = lastSeen(device);
  // Another client's change shows in the fields too (the fields follow the device while they are not edited).
  useEffect(() => setName(device.name), [device.name]);
  useEffect(() => setConnection(device.connection_type), [device.connection_type]);
  useEffect(() => setMessage(device.status?.live_activity_message ?? ""), [device.status?.live_activity_message]);

  async function run(what: string, call: () => PromiseLike<{ data: unknown; error: { message: string } | null }>, done: (data: unknown) => string) {
    setBusy(what);
    setOutcome(null);
    try {
      const { data, error } = await call();
      if (error) setOutcome({ ok: false, text: error.message });
      else setOutcome({ ok: true, text: done(data) });
    } catch (err) {
      setOutcome({ ok: false, text: err instanceof Error ? err.message : String(err) });
    } finally {
      setBusy(null);
    }
  }

  const rename = () => {
    const clash = fleet.devices?.find((d) => d.uuid !== device.uuid && d.name === name.trim());
    if (clash) {
      setOutcome({ ok: false, text: `This workspace already has a device named “${clash.name}”: choose another name.` });
      return;
    }
    return run(
      "rename",
      () => supabase.rpc("rename_device", { device_uuid: device.uuid, name }),
      (data) => {
        const d = data as Device;
        fleet.apply({ uuid: d.uuid, name: d.name });
        setName(d.name);
        return `Renamed to “${d.name}”.`;
      },
    );
  };
  const setType = () =>
    run(
      "connection",
      () => supabase.rpc("set_device_connection_type", { device_uuid: device.uuid, connection_type: connection }),
      (data) => {
        const d = data as Device;
        fleet.apply({ uuid: d.uuid, connection_type: d.connection_type });
        return `Connection type is now ${d.connection_type}.`;
      },
    );
  const vpn = (on: boolean) =>
    run(
      on ? "vpn-on" : "vpn-off",
      () => supabase.rpc(on ? "vpn_on_device" : "vpn_off_device", { device_uuid: device.uuid }),
      (data) => {
        fleet.applyStatus(data as DeviceStatus);
        return `Asked the device to turn its VPN ${on ? "on" : "off"} (VPN state: ${(data as DeviceStatus).vpn_state}).`;
      },
    );
  const sendMessage = () =>
    run(
      "message",
      () => supabase.rpc("set_live_activity_message", { device_uuid: device.uuid, message: message.trim() || null }),
      (data) => {
        fleet.applyStatus(data as DeviceStatus);
        return message.trim() ? `Live Activity message sent: “${message.trim()}”.` : "Live Activity message cleared.";
      },
    );
  const openSheet = () =>
    run(
      "sheet",
      () => supabase.rpc("open_device_sheet", { device_uuid: device.uuid, sheet }),
      () => `Asked the device to open its ${sheet} sheet.`,
    );
  const pairAgain = () =>
    run(
      "pair",
      () => supabase.rpc("issue_device_activation", { device_uuid: device.uuid, valid_for: "15 minutes" }),
      (data) => {
        setActivation(data as Activation);
        return "A new activation code: pairing with it voids the device's earlier tokens.";
      },
    );
  const unpair = () =>
    run(
      "unpair",
      () => supabase.rpc("unpair_device", { device_uuid: device.uuid }),
      (data) => {
        setConfirm(null);
        fleet.apply({ uuid: device.uuid, paired: (data as Device).paired, paired_at: (data as Device).paired_at });
        return "Unpaired: its tokens no longer work. A new activation code pairs it again.";
      },
    );
  const remove = () =>
    run(
      "remove",
      () => supabase.rpc("delete_device", { device_uuid: device.uuid }),
      () => {
        setConfirm(null);
        fleet.remove(device.uuid);
        onClose();
        return "Removed.";
      },
    );

  return (
    <div className="dev-panel">
      <div className="dev-panel-head">
        <h2 data-testid="device-detail-name">{device.name}</h2>
        <span className="spacer" />
        <button type="button" data-testid="device-close" onClick={onClose} aria-label="Close">
          ✕
        </button>
      </div>
      <dl className="dev-facts">
        <dt>Status</dt>
        <dd data-testid="detail-online">
          <span className={`dot ${device.status?.online ? "on" : "off"}`} aria-hidden="true" />
          {device.status?.online ? "online" : "offline"}
          {device.paired ? "" : " · unpaired"}
        </dd>
        <dt>VPN</dt>
        <dd data-testid="detail-vpn">{device.status?.vpn_state ?? "unknown"}</dd>
        <dt>Last seen</dt>
        <dd title={seen ?? undefined}>{ago(seen, now)}</dd>
        <dt>Source</dt>
        <dd>{device.source}</dd>
        <dt>Connection</dt>
        <dd data-testid="detail-connection">
          {device.connection_type}
          {device.proxy_port != null ? ` · proxy port ${device.proxy_port}` : ""}
        </dd>
        {device.source === "proxy" && device.allowed_sources?.length ? (
          <>
            <dt>Allowed from</dt>
            <dd>{device.allowed_sources.join(", ")}</dd>
          </>
        ) : null}
        <dt>Country</dt>
        <dd>{device.country ?? device.status?.ip_country ?? "—"}</dd>
        <dt>IP</dt>
        <dd>{device.status?.ip ?? "—"}</dd>
        <dt>Build</dt>
        <dd>{[device.app_build, device.app_source].filter(Boolean).join(" · ") || "—"}</dd>
        <dt>Model</dt>
        <dd>{[device.model, device.os].filter(Boolean).join(" · ") || "—"}</dd>
        <dt>Owner</dt>
        <dd data-testid="detail-owner">{owner}</dd>
        <dt>Live Activity</dt>
        <dd data-testid="detail-live-message">{device.status?.live_activity_message || "—"}</dd>
        <dt>Paired</dt>
        <dd>{device.paired_at ? new Date(device.paired_at).toLocaleString() : "no"}</dd>
        <dt>UUID</dt>
        <dd className="mono" data-testid="detail-uuid">
          {device.uuid}
        </dd>
      </dl>

      {outcome &&
        (outcome.ok ? (
          <div className="notice" role="status" data-testid="device-result">
            {outcome.text}
          </div>
        ) : (
          <div className="error" role="alert" data-testid="device-error">
            {outcome.text}
          </div>
        ))}

      {!mayCommand && can("devices", "edit") && (
        <p className="muted" data-testid="device-not-owner">
          Only the device's owner or an admin may change it.
        </p>
      )}

      {mayCommand && (
        <div className="dev-controls" data-testid="device-controls">
          <form
            className="dev-row"
            onSubmit={(e) => {
              e.preventDefault();
              void rename();
            }}
          >
            <label htmlFor="dev-rename">Name</label>
            <input id="dev-rename" data-testid="rename-input" value={name} maxLength={100} onChange={(e) => setName(e.target.value)} />
            <button type="submit" data-testid="rename-save" disabled={busy !== null || !name.trim() || name.trim() === device.name}>
              Rename
            </button>
          </form>
          <div className="dev-row">
            <label htmlFor="dev-conn">Connection</label>
            <select id="dev-conn" data-testid="connection-select" value={connection} onChange={(e) => setConnection(e.target.value)}>
              {CONNECTION_TYPES.map((t) => (
                <option key={t} value={t}>
                  {t}
                </option>
              ))}
            </select>
            <button type="button" data-testid="connection-save" disabled={busy !== null || connection === device.connection_type} onClick={() => void setType()}>
              Set
            </button>
          </div>
          <div className="dev-row">
            <span className="dev-label">VPN</span>
            <button type="button" data-testid="vpn-on" disabled={busy !== null} onClick={() => void vpn(true)}>
              Turn on
            </button>
            <button type="button" data-testid="vpn-off" disabled={busy !== null} onClick={() => void vpn(false)}>
              Turn off
            </button>
          </div>
          <form
            className="dev-row"
            onSubmit={(e) => {
              e.preventDefault();
              void sendMessage();
            }}
          >
            <label htmlFor="dev-msg">Live Activity</label>
            <input
              id="dev-msg"
              data-testid="live-message-input"
              value={message}
              maxLength={500}
              placeholder="Text on the lock screen (empty clears it)"
              onChange={(e) => setMessage(e.target.value)}
            />
            <button type="submit" data-testid="live-message-send" disabled={busy !== null}>
              Send
            </button>
          </form>
          <div className="dev-row">
            <label htmlFor="dev-sheet">Open sheet</label>
            <select id="dev-sheet" data-testid="sheet-select" value={sheet} onChange={(e) => setSheet(e.target.value)}>
              {SHEETS.map((s) => (
                <option key={s} value={s}>
                  {s}
                </option>
              ))}
            </select>
            <button type="button" data-testid="sheet-open" disabled={busy !== null} onClick={() => void openSheet()}>
              Open
            </button>
          </div>
          {isAdmin && (
            <div className="dev-row dev-danger">
              <button type="button" data-testid="pair-again" disabled={busy !== null} onClick={() => void pairAgain()}>
                New activation code
              </button>
              {confirm === null && (
                <>
                  <button type="button" data-testid="device-unpair" disabled={busy !== null || !device.paired} onClick={() => setConfirm("unpair")}>
                    Unpair…
                  </button>
                  <button type="button" data-testid="device-remove" className="danger" disabled={busy !== null} onClick={() => setConfirm("remove")}>
                    Remove…
                  </button>
                </>
              )}
            </div>
          )}
          {isAdmin && confirm && (
            <div className="dev-confirm" role="alertdialog" data-testid="device-confirm">
              <p>
                {confirm === "unpair"
                  ? `Unpair “${device.name}”? Its tokens stop working at once; it needs a new activation code.`
                  : `Remove “${device.name}” and everything that hangs off it (its captured traffic, settings)? This cannot be undone.`}
              </p>
              <button
                type="button"
                className="danger"
                data-testid="confirm-yes"
                disabled={busy !== null}
                onClick={() => void (confirm === "unpair" ? unpair() : remove())}
              >
                {confirm === "unpair" ? "Unpair" : "Remove"}
              </button>
              <button type="button" data-testid="confirm-no" onClick={() => setConfirm(null)}>
                Cancel
              </button>
            </div>
          )}
          {activation && <ActivationCard activation={activation} device={device} />}
        </div>
      )}
    </div>
  );
}
