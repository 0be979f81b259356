// The traffic view: the live feed of the selected workspace in a virtualized table (TanStack Virtual), newest at
// the top; follow / pause; a free-text host/path filter; up/down moves the selected row, `/` focuses the filter.
import type { SupabaseClient } from "@supabase/supabase-js";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  type EntryRow,
  formatDuration,
  formatSize,
  formatTime,
  pathWithQuery,
  shortType,
  statusClass,
} from "./entries";
import { useTrafficFeed } from "./feed";
import { EntryDetail } from "./detail/EntryDetail";
import { useLocation, useSearch } from "wouter";
import { useDeviceNames } from "./devices";

const ROW_HEIGHT = 28;

interface Props {
  supabase: SupabaseClient;
  workspaceId: string;
  accessToken: string;
}

export function Traffic({ supabase, workspaceId, accessToken }: Props) {
  const feed = useTrafficFeed(supabase, workspaceId, accessToken);
  const { store, version } = feed;
  const deviceNames = useDeviceNames(supabase, workspaceId, store, version);
  const [following, setFollowing] = useState(true);
  // While paused: how many of the held rows (oldest first) the view shows; later ones wait as "N new".
  const [frozenCount, setFrozenCount] = useState<number | null>(null);
  const [filter, setFilter] = useState("");
  const [selectedId, setSelectedId] = useState<string | null>(null);
  // The open entry is in the URL (`/?entry=<id>`): a deep link opens it, the back button closes it.
  const openId = new URLSearchParams(useSearch()).get("entry");
  const [, navigate] = useLocation();
  const openEntry = (id: string) => {
    setSelectedId(id);
    navigate(`/?entry=${encodeURIComponent(id)}`);
  };
  const closeEntry = () => navigate("/");
  const scrollRef = useRef<HTMLDivElement>(null);
  const filterRef = useRef<HTMLInputElement>(null);
  const prependedAtPause = useRef(0);

  useEffect(() => {
    setFollowing(true);
    setFrozenCount(null);
    setSelectedId(null);
  }, [workspaceId]);

  const total = store.rows.length;
  // Rows put before the held ones after the pause (the initial load) shift the frozen window.
  const shown = frozenCount == null ? total : Math.min(total, frozenCount + (feed.prependedTotal - prependedAtPause.current));
  const newCount = total - shown;

  // Indices into store.rows, newest first; null when no filter is set (index i is store.rows[shown - 1 - i]).
  const needle = filter.trim().toLowerCase();
  const matches = useMemo(() => {
    if (!needle) return null;
    const out: number[] = [];
    for (let i = shown - 1; i >= 0; i--) {
      const row = store.rows[i];
      if (row.host.toLowerCase().includes(needle) || pathWithQuery(row).toLowerCase().includes(needle)) out.push(i);
    }
    return out;
    // version: the store is mutated in place; each flush bumps it, so the memo must recompute
  }, [needle, shown, store, version]);

  const count = matches ? matches.length : shown;
  const rowAt = useCallback(
    (index: number): EntryRow => store.rows[matches ? matches[index] : shown - 1 - index],
    [store, matches, shown],
  );

  const virtualizer = useVirtualizer({
    count,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 12,
    getItemKey: (index) => rowAt(index).id,
  });

  // Following: new rows appear at the top and the view stays there.
  useEffect(() => {
    if (following && scrollRef.current) scrollRef.current.scrollTop = 0;
  }, [following, version]);

  const pause = () => {
    setFollowing(false);
    setFrozenCount(total);
    prependedAtPause.current = feed.prependedTotal;
  };
  const follow = () => {
    setFollowing(true);
    setFrozenCount(null);
    if (scrollRef.current) scrollRef.current.scrollTop = 0;
  };

  const indexOfSelected = (): number => {
    if (selectedId == null) return -1;
    for (let i = 0; i < count; i++) if (rowAt(i).id === selectedId) return i;
    return -1;
  };

  const onKeyDown = useRef<(e: KeyboardEvent) => void>(() => undefined);
  onKeyDown.current = (e: KeyboardEvent) => {
    const target = e.target as HTMLElement | null;
    const typing = target != null && (target.tagName === "INPUT" || target.tagName === "TEXTAREA" || target.tagName === "SELECT");
    if (e.key === "/" && !typing) {
      e.preventDefault();
      filterRef.current?.focus();
      filterRef.current?.select();
      return;
    }
    if (e.key === "Escape" && target === filterRef.current) {
      filterRef.current?.blur();
      return;
    }
    if (e.key === "Enter" && !typing && selectedId != null) {
      e.preventDefault();
      openEntry(selectedId);
      return;
    }
    if ((e.key === "ArrowDown" || e.key === "ArrowUp") && !(typing && target !== filterRef.current) && count > 0) {
      e.preventDefault();
      const current = indexOfSelected();
      const next =
        current < 0 ? 0 : Math.max(0, Math.min(count - 1, current + (e.key === "ArrowDown" ? 1 : -1)));
      setSelectedId(rowAt(next).id);
      virtualizer.scrollToIndex(next, { align: "auto" });
    }
  };
  useEffect(() => {
    const handler = (e: KeyboardEvent) => onKeyDown.current(e);
    window.addEventListener("keydown", handler);
    return () => window.removeEventListener("keydown", handler);
  }, []);

  return (
    <div className={`traffic-split${openId ? " with-detail" : ""}`}>
    <section className="traffic">
      <div className="toolbar">
        <button
          type="button"
          data-testid="follow-toggle"
          className={following ? "following" : "paused"}
          onClick={following ? pause : follow}
          title={following ? "Stop moving the view as entries arrive" : "Show new entries at the top"}
        >
          {following ? "Pause" : "Follow"}
        </button>
        {newCount > 0 && (
          <button type="button" className="new-count" data-testid="new-count" onClick={follow}>
            {newCount} new
          </button>
        )}
        <input
          ref={filterRef}
          type="search"
          className="filter"
          data-testid="filter"
          placeholder="Filter host or path  ( / )"
          value={filter}
          onChange={(e) => setFilter(e.target.value)}
          aria-label="Filter by host or path"
        />
        <span className="spacer" />
        <span className="muted">
          <span data-testid="row-count">{total}</span> {total === 1 ? "row" : "rows"}{matches ? `, ${matches.length} shown` : ""}
        </span>
        <span className={`conn conn-${feed.connection}`} data-testid="connection-state" title="The live feed">
          {feed.connection}
        </span>
      </div>
      {feed.notice && (
        <div className="notice" data-testid="reconnect-notice" role="status">
          {feed.notice}
        </div>
      )}
      {feed.error && (
        <div className="error" data-testid="traffic-error" role="alert">
          {feed.error}
        </div>
      )}
      <div className="table" data-testid="traffic-table" role="table" aria-rowcount={count}>
        <div className="row head" role="row">
          <span className="c-time" role="columnheader">Time</span>
          <span className="c-device" role="columnheader">Device</span>
          <span className="c-method" role="columnheader">Method</span>
          <span className="c-status" role="columnheader">Status</span>
          <span className="c-host" role="columnheader">Host</span>
          <span className="c-path" role="columnheader">Path</span>
          <span className="c-type" role="columnheader">Type</span>
          <span className="c-size" role="columnheader">Size</span>
          <span className="c-dur" role="columnheader">Duration</span>
        </div>
        <div className="scroll" ref={scrollRef}>
          {feed.loading && total === 0 && <p className="empty">Loading traffic…</p>}
          {!feed.loading && count === 0 && (
            <p className="empty">{needle ? "No entry matches the filter." : "No traffic yet. Entries appear here as they are captured."}</p>
          )}
          <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
            {virtualizer.getVirtualItems().map((item) => {
              const row = rowAt(item.index);
              const selected = row.id === selectedId;
              return (
                <div
                  key={item.key}
                  role="row"
                  data-testid="traffic-row"
                  data-entry-id={row.id}
                  aria-selected={selected}
                  className={`row${selected ? " selected" : ""}${row.error ? " failed" : ""}`}
                  style={{ transform: `translateY(${item.start}px)`, height: ROW_HEIGHT }}
                  onClick={() => setSelectedId(row.id)}
                  onDoubleClick={() => openEntry(row.id)}
                >
                  <span className="c-time" title={row.captured_at}>{formatTime(row.captured_at)}</span>
                  <span className="c-device" title={row.device_uuid}>{deviceNames.get(row.device_uuid) ?? row.device_uuid.slice(0, 8)}</span>
                  <span className="c-method">{row.method}</span>
                  <span className={`c-status ${statusClass(row)}`} title={row.error ?? undefined}>
                    {row.status || (row.error ? "error" : "")}
                  </span>
                  <span className="c-host" title={row.host}>{row.host}</span>
                  <span className="c-path" title={pathWithQuery(row)}>{pathWithQuery(row)}</span>
                  <span className="c-type" title={row.response_content_type ?? undefined}>{shortType(row.response_content_type)}</span>
                  <span className="c-size">{formatSize(row.response_size)}</span>
                  <span className="c-dur">{formatDuration(row.duration_ms)}</span>
                </div>
              );
            })}
          </div>
        </div>
      </div>
    </section>
    {openId && <EntryDetail key={openId} entryId={openId} onClose={closeEntry} />}
    </div>
  );
}
