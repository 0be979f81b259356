// The Devices page (issue 17): the selected workspace's fleet, live (devices:<workspace_id> broadcasts and device_status
// changes), with a detail panel per device (/devices?uuid=<uuid>, so a deep link opens it and back closes it).
// Commands go through the same RPCs as `busymate devices` and seed 002: rename_device, set_device_connection_type,
// vpn_on_device / vpn_off_device, set_live_activity_message, open_device_sheet (these publish on device:<uuid>
// themselves and keep device_status in step), issue_device_activation, unpair_device, delete_device, create_device.
// Controls show only when the server would allow them: devices:edit and (owner or admin) for commands, admin
// (grants_all) for add, pair, unpair and remove; the database refuses anyway.
import { type KeyboardEvent, useEffect, useMemo, useRef, useState } from "react";
import { useLocation, useSearch } from "wouter";
import { useApp } from "../app";
import { ErrorNote, Loading, Page } from "../ui";
import { AddDevice } from "./devicesAdd";
import { DeviceDetail } from "./devicesDetail";
import { type FleetDevice, type Owner, ago, lastSeen, useFleet } from "./devicesData";
import "./devices.css";

export function DevicesPage() {
  const { supabase, session, workspaceId, me, can } = useApp();
  const fleet = useFleet(supabase, session.access_token, workspaceId);
  const search = useSearch();
  const [, navigate] = useLocation();
  const selected = new URLSearchParams(search).get("uuid");
  const [adding, setAdding] = useState(false);
  const now = useNow(15_000);
  const isAdmin = me?.grants_all === true;
  const canEdit = can("devices", "edit");

  const device = selected ? (fleet.devices?.find((d) => d.uuid === selected) ?? null) : null;

  // Scroll the deep-linked (or clicked) row into view once it is there.
  const scrolledTo = useRef<string | null>(null);
  useEffect(() => {
    if (!selected || !device || scrolledTo.current === selected) return;
    scrolledTo.current = selected;
    document.querySelector(`[data-uuid="${CSS.escape(selected)}"]`)?.scrollIntoView({ block: "nearest" });
  }, [selected, device]);

  const open = (uuid: string) => navigate(`/devices?uuid=${encodeURIComponent(uuid)}`);
  const close = () => navigate("/devices");

  const actions = (
    <>
      <span className={`conn conn-${fleet.live}`} data-testid="devices-live" title="Live updates (devices:<workspace_id>)">
        {fleet.live}
      </span>
      {canEdit && isAdmin && (
        <button type="button" data-testid="device-add" onClick={() => setAdding((v) => !v)} aria-expanded={adding}>
          {adding ? "Close" : "Add device"}
        </button>
      )}
    </>
  );

  return (
    <Page title="Devices" testId="page-devices" actions={actions}>
      <ErrorNote error={fleet.error} testId="devices-error" />
      {adding && canEdit && isAdmin && (
        <AddDevice
          devices={fleet.devices ?? []}
          onOpen={(uuid) => open(uuid)}
          onClose={() => setAdding(false)}
        />
      )}
      {fleet.devices == null ? (
        <Loading what="devices" />
      ) : (
        <div className={`dev-layout${selected ? " with-detail" : ""}`}>
          <div className="dev-list">
            {fleet.devices.length === 0 ? (
              <p className="empty" data-testid="devices-empty">
                No device in this workspace yet.{canEdit && isAdmin ? " Add one above." : ""}
              </p>
            ) : (
              <FleetTable devices={fleet.devices} owners={fleet.owners} me={me?.id ?? null} selected={selected} now={now} onOpen={open} />
            )}
          </div>
          {selected && (
            <aside className="dev-detail" data-testid="device-detail" aria-label="Device">
              {device ? (
                <DeviceDetail
                  key={device.uuid}
                  device={device}
                  owner={ownerLabel(device, fleet.owners, me?.id ?? null)}
                  now={now}
                  fleet={fleet}
                  onClose={close}
                />
              ) : (
                <div className="dev-missing" data-testid="device-missing">
                  <p className="empty">No device {selected} in this workspace (or you may not see it).</p>
                  <button type="button" onClick={close}>
                    Close
                  </button>
                </div>
              )}
            </aside>
          )}
        </div>
      )}
    </Page>
  );
}

function FleetTable({
  devices,
  owners,
  me,
  selected,
  now,
  onOpen,
}: {
  devices: FleetDevice[];
  owners: Map<string, Owner>;
  me: string | null;
  selected: string | null;
  now: number;
  onOpen: (uuid: string) => void;
}) {
  const onKey = (e: KeyboardEvent<HTMLTableRowElement>, index: number) => {
    if (e.key === "Enter") onOpen(devices[index].uuid);
    else if (e.key === "ArrowDown" || e.key === "ArrowUp") {
      e.preventDefault();
      const next = devices[index + (e.key === "ArrowDown" ? 1 : -1)];
      if (next) (document.querySelector(`[data-uuid="${CSS.escape(next.uuid)}"]`) as HTMLElement | null)?.focus();
    }
  };
  return (
    <table className="dev-table" data-testid="devices-table">
      <thead>
        <tr>
          <th>Name</th>
          <th className="c-source">Source</th>
          <th>Online</th>
          <th className="c-vpn">VPN</th>
          <th className="c-seen">Last seen</th>
          <th className="c-country">Country</th>
          <th className="c-build">Build</th>
          <th className="c-owner">Owner</th>
          <th className="c-conn">Connection</th>
        </tr>
      </thead>
      <tbody>
        {devices.map((d, i) => {
          const seen = lastSeen(d);
          return (
            <tr
              key={d.uuid}
              data-testid="device-row"
              data-uuid={d.uuid}
              tabIndex={0}
              className={d.uuid === selected ? "selected" : undefined}
              aria-selected={d.uuid === selected}
              onClick={() => onOpen(d.uuid)}
              onKeyDown={(e) => onKey(e, i)}
            >
              <td className="c-name">
                <span data-testid="device-name">{d.name}</span>
                {!d.paired && (
                  <span className="dev-badge warn" data-testid="device-unpaired">
                    unpaired
                  </span>
                )}
              </td>
              <td className="c-source" data-testid="device-source">
                {d.source}
              </td>
              <td data-testid="device-online">
                <span className={`dot ${d.status?.online ? "on" : "off"}`} aria-hidden="true" />
                {d.status?.online ? "online" : "offline"}
              </td>
              <td className="c-vpn" data-testid="device-vpn">
                {d.status?.vpn_state ?? "unknown"}
              </td>
              <td className="c-seen" data-testid="device-last-seen" title={seen ?? undefined}>
                {ago(seen, now)}
              </td>
              <td className="c-country" data-testid="device-country">
                {d.country ?? d.status?.ip_country ?? "—"}
              </td>
              <td className="c-build" data-testid="device-build">
                {buildLabel(d)}
              </td>
              <td className="c-owner" data-testid="device-owner">
                {ownerLabel(d, owners, me)}
              </td>
              <td className="c-conn" data-testid="device-connection">
                {d.connection_type}
                {d.proxy_port != null ? ` · :${d.proxy_port}` : ""}
              </td>
            </tr>
          );
        })}
      </tbody>
    </table>
  );
}

export function buildLabel(d: FleetDevice): string {
  const parts = [d.app_build, d.app_source, [d.model, d.os].filter(Boolean).join(" ")].filter(Boolean);
  return parts.length ? parts.join(" · ") : "—";
}

export function ownerLabel(d: FleetDevice, owners: Map<string, Owner>, me: string | null): string {
  if (!d.owner_user_id) return "—";
  if (d.owner_user_id === me) return "you";
  const o = owners.get(d.owner_user_id);
  return o?.display_name || o?.email || d.owner_user_id.slice(0, 8);
}

/** A clock for "5 min ago" labels (local re-render only; nothing is fetched). */
function useNow(everyMs: number): number {
  const [now, setNow] = useState(() => Date.now());
  useEffect(() => {
    const timer = window.setInterval(() => setNow(Date.now()), everyMs);
    return () => window.clearInterval(timer);
  }, [everyMs]);
  return useMemo(() => now, [now]);
}
