// A body, shown the way its bytes call for: JSON as a collapsible tree (nested <details>), text as text, images
// as an image (a blob URL), anything else as a hex dump. The user may switch views; size and truncation are stated.
import { useEffect, useMemo, useState } from "react";
import { formatSize } from "../entries";
import { bytesToText } from "./model";

type Mode = "json" | "text" | "image" | "hex";

const TREE_LIMIT = 256 * 1024; // above this, JSON starts as pretty text (a DOM tree of megabytes is slow)
const HEX_LIMIT = 64 * 1024; // the hex dump shows this much unless asked for all

function mimeOf(contentType: string | null): string {
  return (contentType ?? "").split(";")[0].trim().toLowerCase();
}

export function BodyView(props: {
  side: "request" | "response";
  bytes: Uint8Array | null;
  contentType: string | null;
  size: number;
  truncated: boolean;
}) {
  const { side, bytes, contentType, size, truncated } = props;
  const mime = mimeOf(contentType);
  const text = useMemo(() => (bytes ? bytesToText(bytes) : null), [bytes]);
  const json = useMemo<{ ok: boolean; value?: unknown }>(() => {
    if (text == null) return { ok: false };
    const t = text.trim();
    if (!(mime.includes("json") || t.startsWith("{") || t.startsWith("["))) return { ok: false };
    try {
      return { ok: true, value: JSON.parse(t) };
    } catch {
      return { ok: false };
    }
  }, [text, mime]);
  const isImage = mime.startsWith("image/") && bytes != null && bytes.length > 0;
  const modes: Mode[] = [];
  if (json.ok) modes.push("json");
  if (isImage) modes.push("image");
  if (text != null) modes.push("text");
  modes.push("hex");
  const [mode, setMode] = useState<Mode>(modes[0]);

  const stored = bytes?.length ?? 0;
  const about = (
    <p className="muted body-about" data-testid={`${side}-body-size`}>
      {formatSize(size)} {contentType ? `· ${contentType}` : ""}
      {truncated && (
        <strong className="body-truncated" data-testid={`${side}-body-truncated`}>
          {" "}· truncated: {formatSize(stored)} of {formatSize(size)} stored
        </strong>
      )}
    </p>
  );
  if (bytes == null || bytes.length === 0) {
    return (
      <div className="body" data-testid={`${side}-body`}>
        {about}
        <p className="empty" data-testid={`${side}-body-empty`}>{size > 0 ? "The body was not stored." : "No body."}</p>
      </div>
    );
  }
  return (
    <div className="body" data-testid={`${side}-body`} data-mode={mode}>
      <div className="body-modes" role="tablist">
        {about}
        <span className="spacer" />
        {modes.map((m) => (
          <button key={m} type="button" role="tab" aria-selected={m === mode} className={m === mode ? "on" : ""}
            data-testid={`${side}-body-mode-${m}`} onClick={() => setMode(m)}>
            {m === "json" ? "JSON" : m === "hex" ? "Hex" : m === "image" ? "Image" : "Text"}
          </button>
        ))}
      </div>
      {mode === "json" && json.ok && <JsonRoot value={json.value} big={(text?.length ?? 0) > TREE_LIMIT} side={side} />}
      {mode === "text" && text != null && <pre className="body-text" data-testid={`${side}-body-text`}>{text}</pre>}
      {mode === "image" && <ImageBody bytes={bytes} mime={mime} side={side} />}
      {mode === "hex" && <HexDump bytes={bytes} side={side} />}
    </div>
  );
}

function ImageBody({ bytes, mime, side }: { bytes: Uint8Array; mime: string; side: string }) {
  const [url, setUrl] = useState<string | null>(null);
  const [broken, setBroken] = useState(false);
  useEffect(() => {
    const u = URL.createObjectURL(new Blob([bytes.slice()], { type: mime }));
    setUrl(u);
    return () => URL.revokeObjectURL(u);
  }, [bytes, mime]);
  if (!url) return null;
  return (
    <div className="body-image">
      {broken ? (
        <p className="notice">The browser cannot show this image ({mime}); see Hex.</p>
      ) : (
        <img src={url} alt={`${side} body (${mime})`} data-testid={`${side}-body-image`} onError={() => setBroken(true)} />
      )}
    </div>
  );
}

function HexDump({ bytes, side }: { bytes: Uint8Array; side: string }) {
  const [all, setAll] = useState(false);
  const shown = all ? bytes.length : Math.min(bytes.length, HEX_LIMIT);
  const lines = useMemo(() => {
    const out: string[] = [];
    for (let off = 0; off < shown; off += 16) {
      const row = bytes.subarray(off, Math.min(off + 16, shown));
      let hex = "";
      let ascii = "";
      for (let i = 0; i < 16; i++) {
        if (i < row.length) {
          hex += row[i].toString(16).padStart(2, "0") + (i === 7 ? "  " : " ");
          ascii += row[i] >= 0x20 && row[i] < 0x7f ? String.fromCharCode(row[i]) : ".";
        } else hex += i === 7 ? "    " : "   ";
      }
      out.push(`${off.toString(16).padStart(8, "0")}  ${hex} ${ascii}`);
    }
    return out.join("\n");
  }, [bytes, shown]);
  return (
    <>
      <pre className="body-hex" data-testid={`${side}-body-hex`}>{lines}</pre>
      {shown < bytes.length && (
        <button type="button" data-testid={`${side}-body-hex-all`} onClick={() => setAll(true)}>
          Show all {formatSize(bytes.length)} (first {formatSize(shown)} shown)
        </button>
      )}
    </>
  );
}

function JsonRoot({ value, big, side }: { value: unknown; big: boolean; side: string }) {
  if (big) return <pre className="body-text" data-testid={`${side}-body-json`}>{JSON.stringify(value, null, 2)}</pre>;
  return (
    <div className="json" data-testid={`${side}-body-json`}>
      <JsonNode name={null} value={value} depth={0} />
    </div>
  );
}

function JsonNode({ name, value, depth }: { name: string | null; value: unknown; depth: number }) {
  const label = name != null ? <span className="json-key">{JSON.stringify(name)}: </span> : null;
  if (value !== null && typeof value === "object") {
    const isArray = Array.isArray(value);
    const items: [string, unknown][] = isArray ? (value as unknown[]).map((v, i) => [String(i), v]) : Object.entries(value as object);
    const [open, close] = isArray ? ["[", "]"] : ["{", "}"];
    if (items.length === 0) {
      return <div className="json-line">{label}{open}{close}</div>;
    }
    return (
      <details className="json-node" open={depth < 3}>
        <summary>
          {label}
          {open}
          <span className="json-count muted"> {items.length} {isArray ? (items.length === 1 ? "item" : "items") : items.length === 1 ? "key" : "keys"} </span>
        </summary>
        <div className="json-children">
          {items.map(([k, v]) => (
            <JsonNode key={k} name={isArray ? null : k} value={v} depth={depth + 1} />
          ))}
        </div>
        <div className="json-line">{close}</div>
      </details>
    );
  }
  const kind = value === null ? "null" : typeof value;
  return (
    <div className="json-line">
      {label}
      <span className={`json-${kind}`}>{JSON.stringify(value)}</span>
    </div>
  );
}
