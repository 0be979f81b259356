// Add a device as `busymate devices add` does (create_device, then issue_device_activation), and the card that
// shows an activation code: the code, a QR code of it for a phone, how to pair with it, and where a device that
// uses the proxy downloads the CA and the iOS profile (the proxy itself serves them at http://ca.busymate/).
import QRCode from "qrcode";
import { useEffect, useMemo, useState } from "react";
import { useApp } from "../app";
import { loadConfig } from "../config";
import type { Device } from "./devicesData";

export interface Activation {
  device_uuid: string;
  code: string;
  expires_at: string;
}

// The proxy's default port pool (BUSYMATE_PROXY_PORTS); the proxy opens only ports of its pool.
const POOL_FIRST = 9100;
const POOL_LAST = 9199;
const CA_HOST = "http://ca.busymate";

export function AddDevice({ devices, onOpen, onClose }: { devices: Device[]; onOpen: (uuid: string) => void; onClose: () => void }) {
  const { supabase, workspaceId, workspaces } = useApp();
  const [name, setName] = useState("");
  const [source, setSource] = useState<"proxy" | "bmc" | "ios">("proxy");
  const [port, setPort] = useState("");
  const [allow, setAllow] = useState("");
  const [minutes, setMinutes] = useState("15");
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string | null>(null);
  const [added, setAdded] = useState<{ device: Device; activation: Activation } | null>(null);
  const workspace = workspaces.find((w) => w.id === workspaceId);

  // The next port of the default pool that no device this admin can see holds (admins see every device).
  const suggested = useMemo(() => {
    const taken = new Set(devices.map((d) => d.proxy_port));
    for (let p = POOL_FIRST; p <= POOL_LAST; p++) if (!taken.has(p)) return p;
    return null;
  }, [devices]);

  async function submit() {
    setBusy(true);
    setError(null);
    try {
      const sources = allow
        .split(/[\s,]+/)
        .map((s) => s.trim())
        .filter(Boolean);
      const wantPort = source === "proxy" ? (port.trim() ? Number(port) : suggested) : null;
      if (wantPort != null && (!Number.isInteger(wantPort) || wantPort < 1 || wantPort > 65535)) {
        setError("A port is a whole number between 1 and 65535.");
        return;
      }
      const clash = devices.find((d) => d.workspace_id === workspaceId && d.name === name.trim());
      if (clash) {
        setError(`This workspace already has a device named “${clash.name}” (${clash.uuid}): choose another name.`);
        return;
      }
      const valid = Number(minutes);
      if (!Number.isInteger(valid) || valid < 1) {
        setError("The code lasts a whole number of minutes, at least 1.");
        return;
      }
      const made = await supabase.rpc("create_device", {
        workspace_id: workspaceId,
        name: name.trim(),
        source,
        allowed_sources: sources.length ? sources : null,
        proxy_port: wantPort,
      });
      if (made.error) {
        const taken = made.error.code === "23505" && /proxy_port/.test(`${made.error.message} ${made.error.details ?? ""}`);
        setError(taken ? `${made.error.message}: port ${wantPort} is taken by another device; leave the port empty or pick another.` : made.error.message);
        return;
      }
      const device = made.data as Device;
      const code = await supabase.rpc("issue_device_activation", { device_uuid: device.uuid, valid_for: `${valid} minutes` });
      if (code.error) {
        setError(`The device was added, but no activation code: ${code.error.message}`);
        return;
      }
      setAdded({ device, activation: code.data as Activation });
      setName("");
      setPort("");
    } catch (err) {
      setError(err instanceof Error ? err.message : String(err));
    } finally {
      setBusy(false);
    }
  }

  return (
    <section className="dev-add" data-testid="add-device-panel" aria-label="Add a device">
      <form
        className="dev-add-form"
        data-testid="add-device-form"
        onSubmit={(e) => {
          e.preventDefault();
          void submit();
        }}
      >
        <label>
          Name
          <input data-testid="add-name" value={name} maxLength={100} required placeholder="e.g. Pixel 8" onChange={(e) => setName(e.target.value)} />
        </label>
        <label>
          Source
          <select data-testid="add-source" value={source} onChange={(e) => setSource(e.target.value as typeof source)}>
            <option value="proxy">proxy (a port of the proxy)</option>
            <option value="ios">ios (the iOS app)</option>
            <option value="bmc">bmc (a browser)</option>
          </select>
        </label>
        {source === "proxy" && (
          <>
            <label>
              Port
              <input
                data-testid="add-port"
                inputMode="numeric"
                value={port}
                placeholder={suggested ? String(suggested) : "port"}
                onChange={(e) => setPort(e.target.value)}
              />
            </label>
            <label>
              Allowed from
              <input data-testid="add-allow" value={allow} placeholder="127.0.0.1/32, ::1/128" onChange={(e) => setAllow(e.target.value)} />
            </label>
          </>
        )}
        <label>
          Code valid (min)
          <input data-testid="add-valid-for" inputMode="numeric" value={minutes} onChange={(e) => setMinutes(e.target.value)} />
        </label>
        <div className="dev-add-buttons">
          <button type="submit" data-testid="add-submit" disabled={busy || !name.trim()}>
            {busy ? "Adding…" : `Add to ${workspace?.name ?? "this workspace"}`}
          </button>
          <button type="button" onClick={onClose}>
            Cancel
          </button>
        </div>
        {source === "proxy" && (
          <p className="muted dev-hint">
            Empty port: the next free one of the proxy's default pool ({POOL_FIRST}–{POOL_LAST}); the proxy opens only ports of its pool
            (BUSYMATE_PROXY_PORTS). Empty "allowed from": this machine only.
          </p>
        )}
      </form>
      {error && (
        <div className="error" role="alert" data-testid="add-error">
          {error}
        </div>
      )}
      {added && (
        <div data-testid="add-result">
          <p className="notice" role="status">
            Added <strong data-testid="added-name">{added.device.name}</strong>.{" "}
            <button type="button" className="link" data-testid="added-open" onClick={() => onOpen(added.device.uuid)}>
              Open it
            </button>
          </p>
          <ActivationCard activation={added.activation} device={added.device} />
        </div>
      )}
    </section>
  );
}

export function ActivationCard({ activation, device }: { activation: Activation; device: Device }) {
  const [apiUrl, setApiUrl] = useState<string | null>(null);
  const [qr, setQr] = useState<string | null>(null);
  const [qrError, setQrError] = useState<string | null>(null);

  useEffect(() => {
    let live = true;
    loadConfig().then(
      (c) => live && setApiUrl(c.url),
      () => live && setApiUrl(window.location.origin),
    );
    return () => {
      live = false;
    };
  }, []);

  // What the phone scans: the code and the API to exchange it at (POST <api>/functions/v1/pair {"code"}).
  const payload = apiUrl ? `busymate://pair?code=${encodeURIComponent(activation.code)}&api=${encodeURIComponent(apiUrl)}` : null;
  useEffect(() => {
    if (!payload) return;
    let live = true;
    QRCode.toDataURL(payload, { margin: 1, width: 220, errorCorrectionLevel: "M" }).then(
      (url) => live && setQr(url),
      (err: unknown) => live && setQrError(err instanceof Error ? err.message : String(err)),
    );
    return () => {
      live = false;
    };
  }, [payload]);

  const proxyHost = apiUrl ? new URL(apiUrl).hostname : "this machine";
  return (
    <div className="dev-activation" data-testid="activation">
      <div className="dev-activation-code">
        <div>
          <div className="muted">Activation code (once)</div>
          <div className="code" data-testid="activation-code">
            {activation.code}
          </div>
          <div className="muted" data-testid="activation-expires">
            valid until {new Date(activation.expires_at).toLocaleString()}
          </div>
        </div>
        {qr ? (
          <img className="qr" src={qr} width={160} height={160} alt={`QR code of activation code ${activation.code}`} data-testid="activation-qr" data-payload={payload ?? ""} />
        ) : qrError ? (
          <div className="error">{qrError}</div>
        ) : (
          <span className="muted">QR code…</span>
        )}
      </div>
      <p className="muted dev-hint">
        The device exchanges it for its token: <code>POST {apiUrl ?? "…"}/functions/v1/pair</code> with{" "}
        <code>{`{"code": "${activation.code}"}`}</code> (the QR code carries the code and the API's address).
      </p>
      {device.source === "proxy" && device.proxy_port != null && (
        <div className="dev-ca" data-testid="ca-links">
          <p>
            Point the device's HTTP(S) proxy at <strong data-testid="proxy-address">{proxyHost}:{device.proxy_port}</strong>, then, through
            that proxy, install the CA the proxy serves:
          </p>
          <ul>
            <li>
              <a href={`${CA_HOST}/busymate-ca.mobileconfig`} data-testid="ca-ios">
                iOS / macOS profile
              </a>{" "}
              (then Settings › General › About › Certificate Trust Settings: full trust)
            </li>
            <li>
              <a href={`${CA_HOST}/busymate-ca.crt`} data-testid="ca-der">
                DER (.crt)
              </a>{" "}
              for Android and Windows
            </li>
            <li>
              <a href={`${CA_HOST}/busymate-ca.pem`} data-testid="ca-pem">
                PEM
              </a>{" "}
              for curl, Node, Python
            </li>
          </ul>
          <p className="muted dev-hint">
            These links answer only through the proxy (like mitmproxy's mitm.it); on this machine, <code>busymate proxy ca --format pem</code>{" "}
            writes the same file.
          </p>
        </div>
      )}
      {device.source === "ios" && (
        <p className="muted dev-hint" data-testid="ca-ios-note">
          The iOS app installs its own certificate (its "cert" sheet); with a proxy port, <a href={`${CA_HOST}/`}>{CA_HOST}/</a> serves the
          profile through the proxy.
        </p>
      )}
    </div>
  );
}
