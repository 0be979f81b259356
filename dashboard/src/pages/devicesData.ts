// The fleet of one workspace, live: devices (with their device_status and owner) read once per (re)join, then kept
// current from the private `devices:<workspace_id>` channel: the database's broadcasts of that workspace's device
// rows (INSERT, UPDATE, DELETE in the broadcast_changes envelope; a device moved away is a DELETE) and postgres_changes on public.device_status (RLS per subscriber).
// No polling: every time the channel (re)joins, the list is read again, and the changes heard while that read was
// under way are applied over it in order, so nothing is missed across a reconnect.
import type { RealtimeChannel, SupabaseClient } from "@supabase/supabase-js";
import { useEffect, useRef, useState } from "react";

export interface DeviceStatus {
  device_uuid: string;
  online: boolean;
  vpn_state: string;
  heartbeat_at: string | null;
  ip: string | null;
  ip_country: string | null;
  live_activity_message: string | null;
}

export interface Owner {
  id: string;
  email: string | null;
  display_name: string | null;
}

export interface Device {
  uuid: string;
  workspace_id: string;
  owner_user_id: string | null;
  name: string;
  model: string | null;
  os: string | null;
  source: "ios" | "proxy" | "bmc";
  connection_type: "vpn" | "pac" | "proxy" | "cdp";
  app_build: string | null;
  app_source: string | null;
  country: string | null;
  proxy_port: number | null;
  allowed_sources: string[] | null;
  last_seen_at: string | null;
  created_at: string;
  paired: boolean;
  paired_at: string | null;
}

export interface FleetDevice extends Device {
  status: DeviceStatus | null;
}

export type LiveState = "connecting" | "live" | "reconnecting" | "offline";

export interface Fleet {
  devices: FleetDevice[] | null; // null until the first read
  owners: Map<string, Owner>;
  error: string | null;
  live: LiveState;
  /** Put a row the page itself got back from an RPC (the broadcast follows; both are the same row). */
  apply: (device: Partial<Device> & { uuid: string }) => void;
  applyStatus: (status: DeviceStatus) => void;
  remove: (uuid: string) => void;
}

type Change =
  | { kind: "device"; operation: string; record: Device | null; old: Partial<Device> | null }
  | { kind: "status"; operation: string; record: DeviceStatus | null; old: Partial<DeviceStatus> | null };

const SELECT = "*, status:device_status(*), owner:profiles(id,email,display_name)";

export function useFleet(supabase: SupabaseClient, accessToken: string, workspaceId: string): Fleet {
  const [devices, setDevices] = useState<Map<string, FleetDevice> | null>(null);
  const [owners, setOwners] = useState<Map<string, Owner>>(new Map());
  const [error, setError] = useState<string | null>(null);
  const [live, setLive] = useState<LiveState>("connecting");
  const pending = useRef<Change[] | null>(null); // changes heard while a read is under way

  useEffect(() => {
    let alive = true;
    let channel: RealtimeChannel | null = null;
    let readNo = 0;
    setDevices(null);
    setError(null);
    setLive("connecting");

    const applyChange = (map: Map<string, FleetDevice>, change: Change): void => {
      if (change.kind === "device") {
        const rec = change.record;
        if (change.operation === "DELETE") {
          const uuid = change.old?.uuid;
          if (uuid) map.delete(uuid);
          return;
        }
        if (!rec) return;
        if (rec.workspace_id !== workspaceId) {
          map.delete(rec.uuid); // moved away, or another workspace's device
          return;
        }
        const before = map.get(rec.uuid);
        map.set(rec.uuid, { ...rec, status: before?.status ?? null });
        return;
      }
      const rec = change.record;
      const uuid = rec?.device_uuid ?? change.old?.device_uuid;
      if (!uuid) return;
      const before = map.get(uuid);
      if (!before) return; // a device of another workspace (or one not read yet: the next read has it)
      map.set(uuid, { ...before, status: change.operation === "DELETE" ? null : rec });
    };

    const hear = (change: Change): void => {
      if (!alive) return;
      if (pending.current) pending.current.push(change);
      setDevices((current) => {
        if (!current) return current;
        const next = new Map(current);
        applyChange(next, change);
        return next;
      });
    };

    const read = (): void => {
      const mine = ++readNo;
      pending.current = [];
      void supabase
        .from("devices")
        .select(SELECT)
        .eq("workspace_id", workspaceId)
        .order("created_at")
        .then(({ data, error: err }) => {
          if (!alive || mine !== readNo) return;
          const heard = pending.current ?? [];
          pending.current = null;
          if (err) {
            setError(err.message);
            setDevices((current) => current ?? new Map());
            return;
          }
          setError(null);
          const map = new Map<string, FleetDevice>();
          const who = new Map<string, Owner>();
          for (const row of (data ?? []) as (Device & { status: DeviceStatus | null; owner: Owner | null })[]) {
            const { owner, ...device } = row;
            map.set(device.uuid, device);
            if (owner) who.set(owner.id, owner);
          }
          for (const change of heard) applyChange(map, change);
          setDevices(map);
          setOwners(who);
        });
    };

    void supabase.realtime.setAuth(accessToken).then(() => {
      if (!alive) return;
      channel = supabase
        .channel(`devices:${workspaceId}`, { config: { private: true } })
        .on("broadcast", { event: "*" }, (message: { event: string; payload?: Record<string, unknown> }) => {
          const p = message.payload ?? {};
          if (p.table !== "devices") return;
          hear({
            kind: "device",
            operation: String(p.operation ?? message.event),
            record: (p.record as Device | null) ?? null,
            old: (p.old_record as Partial<Device> | null) ?? null,
          });
        })
        .on(
          "postgres_changes",
          { event: "*", schema: "public", table: "device_status" },
          (change: { eventType: string; new: Record<string, unknown>; old: Record<string, unknown> }) => {
            hear({
              kind: "status",
              operation: change.eventType,
              record: change.eventType === "DELETE" ? null : (change.new as unknown as DeviceStatus),
              old: (change.old as Partial<DeviceStatus>) ?? null,
            });
          },
        )
        .subscribe((status, err) => {
          if (!alive) return;
          if (status === "SUBSCRIBED") {
            setLive("live");
            read(); // first join, and every rejoin: read again so nothing missed stays missed
          } else if (status === "CHANNEL_ERROR" || status === "TIMED_OUT") {
            setLive("reconnecting");
            if (err) setError(`Live updates: ${err.message}`);
          } else if (status === "CLOSED") {
            setLive("offline");
          }
        });
    });

    return () => {
      alive = false;
      pending.current = null;
      if (channel) void supabase.removeChannel(channel);
    };
  }, [supabase, accessToken, workspaceId]);

  const list = devices ? [...devices.values()].sort((a, b) => a.created_at.localeCompare(b.created_at)) : null;
  return {
    devices: list,
    owners,
    error,
    live,
    apply: (device) =>
      setDevices((current) => {
        if (!current) return current;
        const before = current.get(device.uuid);
        if (!before) return current;
        const next = new Map(current);
        next.set(device.uuid, { ...before, ...device });
        return next;
      }),
    applyStatus: (status) =>
      setDevices((current) => {
        const before = current?.get(status.device_uuid);
        if (!current || !before) return current;
        const next = new Map(current);
        next.set(status.device_uuid, { ...before, status });
        return next;
      }),
    remove: (uuid) =>
      setDevices((current) => {
        if (!current?.has(uuid)) return current;
        const next = new Map(current);
        next.delete(uuid);
        return next;
      }),
  };
}

/** `12 s ago`, `5 min ago`, `3 h ago`, `2 days ago`, `never` (as `busymate devices list` says it). */
export function ago(value: string | null | undefined, now: number): string {
  if (!value) return "never";
  const then = Date.parse(value);
  if (Number.isNaN(then)) return value;
  const seconds = Math.floor((now - then) / 1000);
  if (seconds < 5) return "just now";
  for (const [unit, size] of [
    ["day", 86400],
    ["h", 3600],
    ["min", 60],
  ] as const) {
    if (seconds >= size) {
      const count = Math.floor(seconds / size);
      return `${count} ${unit}${unit === "day" && count > 1 ? "s" : ""} ago`;
    }
  }
  return `${seconds} s ago`;
}

/** The later of the device's last capture (devices.last_seen_at) and its last heartbeat (device_status). */
export function lastSeen(device: FleetDevice): string | null {
  const a = device.last_seen_at;
  const b = device.status?.heartbeat_at ?? null;
  if (!a) return b;
  if (!b) return a;
  return Date.parse(a) >= Date.parse(b) ? a : b;
}
