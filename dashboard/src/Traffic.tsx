// The traffic view: the live feed of the selected workspace in a virtualized table (TanStack Virtual), newest at
// the top; follow / pause; tabs (the user's workspace_tabs), each with its filter (host, path, method, status
// class, device, content type, tag, free text), compiled into one predicate and applied incrementally to the held
// rows; tags as colored chips; up/down moves the selected row, Enter opens it, `/` focuses the free-text filter.
import type { SupabaseClient } from "@supabase/supabase-js";
import { useVirtualizer } from "@tanstack/react-virtual";
import { useCallback, useDeferredValue, useEffect, useMemo, useRef, useState } from "react";
import { useLocation, useSearch } from "wouter";
import { useApp } from "./app";
import { HarExportButton } from "./detail/har";
import { EntryDetail } from "./detail/EntryDetail";
import { useDeviceNames } from "./devices";
import {
  type EntryRow,
  formatDuration,
  formatSize,
  formatTime,
  pathWithQuery,
  shortType,
  statusClass,
} from "./entries";
import { useTrafficFeed, useTypeFill } from "./feed";
import {
  type FilterState,
  STATUS_CLASSES,
  type Tag,
  TagMatcher,
  activeFieldCount,
  compileFilter,
  filterKey,
  usesType,
} from "./filters";
import { type Tab, type TabsApi, useTabs } from "./tabs";
import "./traffic.css";

const ROW_HEIGHT = 28;
const HAR_CAP = 5000; // the most entries one "Export HAR" of the filter takes (newest first)
const METHODS = ["GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS", "CONNECT"];
const EMPTY_FILTER: FilterState = {};

interface Props {
  supabase: SupabaseClient;
  workspaceId: string;
  accessToken: string;
}

// The held rows that pass the predicate, as indices into store.rows (ascending), kept up to date incrementally:
// only rows appended since the last scan are tested; a new predicate, a new rows array (rows put before the held
// ones) or content types filled in under a content-type filter start over.
interface Scan {
  predicate: ((row: EntryRow) => boolean) | null;
  rows: EntryRow[] | null;
  typeEpoch: number;
  scanned: number;
  list: number[];
}

function useTags(supabase: SupabaseClient, allowed: boolean): { tags: Tag[]; error: string | null } {
  const [tags, setTags] = useState<Tag[]>([]);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    if (!allowed) return;
    let live = true;
    void supabase
      .from("tags")
      .select("id,name,color,match_patterns")
      .order("name", { ascending: true })
      .then(({ data, error: err }) => {
        if (!live) return;
        if (err) setError(`Could not load the tags: ${err.message}`);
        else setTags((data ?? []) as Tag[]);
      });
    return () => {
      live = false;
    };
  }, [supabase, allowed]);
  return { tags, error };
}

// Black or white text, whichever reads better on the tag's color.
function inkFor(color: string): string {
  const m = /^#([0-9a-f]{2})([0-9a-f]{2})([0-9a-f]{2})$/i.exec(color);
  if (!m) return "#fff";
  const [r, g, b] = [m[1], m[2], m[3]].map((h) => parseInt(h, 16));
  return 0.299 * r + 0.587 * g + 0.114 * b > 150 ? "#111" : "#fff";
}

export function TagChip({ tag }: { tag: Tag }) {
  return (
    <span
      className="tag-chip"
      data-testid="tag-chip"
      data-tag={tag.name}
      data-color={tag.color}
      style={{ background: tag.color, color: inkFor(tag.color) }}
      title={`${tag.name}: ${tag.match_patterns.join(", ")}`}
    >
      {tag.name}
    </span>
  );
}

export function Traffic({ supabase, workspaceId, accessToken }: Props) {
  const { session, can } = useApp();
  const feed = useTrafficFeed(supabase, workspaceId, accessToken);
  const { store, version } = feed;
  const deviceNames = useDeviceNames(supabase, workspaceId, store, version);
  const tabs = useTabs(supabase, workspaceId, session.user.id);
  const filter = tabs.active?.filter ?? EMPTY_FILTER;
  const { tags, error: tagsError } = useTags(supabase, can("tags", "view"));
  const typeFill = useTypeFill(supabase, workspaceId);
  const [following, setFollowing] = useState(true);
  // While paused: how many of the held rows (oldest first) the view shows; later ones wait as "N new".
  const [frozenCount, setFrozenCount] = useState<number | null>(null);
  const [filtersOpen, setFiltersOpen] = useState(false);
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
  const atTop = useRef(true); // the table's scroll position is 0 (kept from its scroll events)
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

  const matcher = useMemo(() => new TagMatcher(tags), [tags]);
  // Typing stays responsive: the table follows the filter in a deferred render (a rescan of every held row).
  const deferredFilter = useDeferredValue(filter);
  const key = filterKey(deferredFilter);
  // eslint-disable-next-line react-hooks/exhaustive-deps
  const predicate = useMemo(() => compileFilter(deferredFilter, matcher), [key, matcher]);
  const typeFiltered = usesType(deferredFilter);

  const scanRef = useRef<Scan>({ predicate: null, rows: null, typeEpoch: 0, scanned: 0, list: [] });
  const scan = scanRef.current;
  if (
    scan.predicate !== predicate ||
    scan.rows !== store.rows ||
    scan.scanned > total ||
    (typeFiltered && scan.typeEpoch !== typeFill.epoch)
  ) {
    scan.predicate = predicate;
    scan.rows = store.rows;
    scan.typeEpoch = typeFill.epoch;
    scan.scanned = 0;
    scan.list = [];
  }
  if (predicate) {
    const rows = store.rows;
    for (let i = scan.scanned; i < total; i++) if (predicate(rows[i])) scan.list.push(i);
    scan.scanned = total;
  }
  // The matches inside the shown window (indices below `shown`): a binary search in the ascending list.
  let matchCount = 0;
  if (predicate) {
    let lo = 0;
    let hi = scan.list.length;
    while (lo < hi) {
      const mid = (lo + hi) >> 1;
      if (scan.list[mid] < shown) lo = mid + 1;
      else hi = mid;
    }
    matchCount = lo;
  }
  const list = scan.list;
  const count = predicate ? matchCount : shown;
  const rowAt = useCallback(
    (index: number): EntryRow => store.rows[predicate ? list[matchCount - 1 - index] : shown - 1 - index],
    // version: the store is mutated in place; each flush bumps it
    // eslint-disable-next-line react-hooks/exhaustive-deps
    [store, predicate, list, matchCount, shown, version],
  );
  const rowAtRef = useRef(rowAt);
  rowAtRef.current = rowAt;
  const countRef = useRef(count);
  countRef.current = count;
  const filteredIds = useCallback(() => {
    const n = Math.min(countRef.current, HAR_CAP);
    const ids: string[] = [];
    for (let i = 0; i < n; i++) ids.push(rowAtRef.current(i).id);
    return ids;
  }, []);

  const virtualizer = useVirtualizer({
    count,
    getScrollElement: () => scrollRef.current,
    estimateSize: () => ROW_HEIGHT,
    overscan: 6,
    // No getItemKey: the rows have one height, and the virtualizer calls it for every row whenever the count
    // changes (each flush); React's key is the entry id below.
  });
  const items = virtualizer.getVirtualItems();

  // The Type column of live rows: the rows on screen first; under a content-type filter every held row.
  useEffect(() => {
    const visible: EntryRow[] = [];
    for (const item of items) {
      if (item.index < count) {
        const row = rowAt(item.index);
        if (row.response_content_type === undefined) visible.push(row);
      }
    }
    if (visible.length) typeFill.request(visible, true);
  });
  const typeScan = useRef<{ rows: EntryRow[] | null; scanned: number }>({ rows: null, scanned: 0 });
  useEffect(() => {
    if (!typeFiltered) return;
    const ts = typeScan.current;
    if (ts.rows !== store.rows) {
      ts.rows = store.rows;
      ts.scanned = 0;
    }
    const rows = store.rows;
    const unknown: EntryRow[] = [];
    for (let i = ts.scanned; i < rows.length; i++) if (rows[i].response_content_type === undefined) unknown.push(rows[i]);
    ts.scanned = rows.length;
    // newest first: the rows at the top of the table are answered first
    unknown.reverse();
    if (unknown.length) typeFill.request(unknown);
  }, [typeFiltered, store, version, typeFill.request]);

  // Following: new rows appear at the top and the view stays there.
  useEffect(() => {
    // Written only when the view left the top (known from scroll events): a write, or a read, of scrollTop
    // in every flush would force a layout inside the commit.
    if (following && scrollRef.current && !atTop.current) {
      scrollRef.current.scrollTop = 0;
      atTop.current = true;
    }
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
    // Enter on a focused control (a button, a link, a <summary>, anything in the detail pane) is that control's.
    const onControl = target != null && (target.closest("button, a, summary, [role=tab], .detail") != null);
    if (e.key === "Enter" && !typing && !onControl && selectedId != null) {
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

  const set = (patch: Partial<FilterState>) => tabs.setFilter((f) => ({ ...f, ...patch }));
  const devices = useMemo(
    () => [...deviceNames.entries()].sort((a, b) => a[1].localeCompare(b[1])),
    [deviceNames],
  );
  const fieldCount = activeFieldCount(filter);
  const errors = [tabs.error, tagsError, typeFill.error].filter((e): e is string => !!e);

  return (
    <div className={`traffic-split${openId ? " with-detail" : ""}`}>
    <section className="traffic">
      <TabStrip tabs={tabs} />
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
          placeholder="Filter host, path or query  ( / )"
          value={filter.text ?? ""}
          onChange={(e) => set({ text: e.target.value })}
          aria-label="Filter by host, path or query"
        />
        <button
          type="button"
          className="filters-toggle"
          data-testid="filters-toggle"
          aria-expanded={filtersOpen}
          aria-controls="traffic-filter-fields"
          onClick={() => setFiltersOpen((o) => !o)}
        >
          Filters{fieldCount ? ` (${fieldCount})` : ""}
        </button>
        <span className="spacer" />
        <HarExportButton entryIds={filteredIds} label="Export HAR" testId="export-har-filter" />
        <span className="muted">
          <span data-testid="row-count">{total}</span> {total === 1 ? "row" : "rows"}
          {predicate ? (
            <>
              , <span data-testid="shown-count">{matchCount}</span> shown
            </>
          ) : (
            ""
          )}
        </span>
        <span className={`conn conn-${feed.connection}`} data-testid="connection-state" title="The live feed">
          {feed.connection}
        </span>
      </div>
      <div
        id="traffic-filter-fields"
        className={`filter-fields${filtersOpen ? " open" : ""}`}
        data-testid="filter-fields"
        role="group"
        aria-label="Filters"
      >
        <input
          type="search"
          data-testid="filter-host"
          placeholder="Host (*.example.com)"
          aria-label="Host contains or matches"
          value={filter.host ?? ""}
          onChange={(e) => set({ host: e.target.value })}
        />
        <input
          type="search"
          data-testid="filter-path"
          placeholder="Path"
          aria-label="Path contains or matches"
          value={filter.path ?? ""}
          onChange={(e) => set({ path: e.target.value })}
        />
        <select
          data-testid="filter-method"
          aria-label="Method"
          value={filter.method ?? ""}
          onChange={(e) => set({ method: e.target.value })}
        >
          <option value="">Any method</option>
          {METHODS.map((m) => (
            <option key={m} value={m}>
              {m}
            </option>
          ))}
        </select>
        <span className="status-classes" role="group" aria-label="Status class">
          {STATUS_CLASSES.map((s) => {
            const on = filter.status?.includes(s) ?? false;
            return (
              <button
                key={s}
                type="button"
                data-testid={`filter-status-${s}`}
                aria-pressed={on}
                className={`status-toggle${on ? " on" : ""} ${s === "error" ? "s-err" : `s${s}`}`}
                onClick={() =>
                  tabs.setFilter((f) => {
                    const current = f.status ?? [];
                    return { ...f, status: on ? current.filter((x) => x !== s) : [...current, s] };
                  })
                }
              >
                {s}
              </button>
            );
          })}
        </span>
        <select
          data-testid="filter-device"
          aria-label="Device"
          value={filter.device ?? ""}
          onChange={(e) => set({ device: e.target.value })}
        >
          <option value="">Any device</option>
          {filter.device && !deviceNames.has(filter.device) && <option value={filter.device}>{filter.device.slice(0, 8)}</option>}
          {devices.map(([uuid, name]) => (
            <option key={uuid} value={uuid}>
              {name}
            </option>
          ))}
        </select>
        <input
          type="search"
          data-testid="filter-type"
          placeholder="Content type"
          aria-label="Content type contains"
          value={filter.type ?? ""}
          onChange={(e) => set({ type: e.target.value })}
        />
        <select
          data-testid="filter-tag"
          aria-label="Tag"
          value={filter.tag ?? ""}
          onChange={(e) => set({ tag: e.target.value })}
        >
          <option value="">Any tag</option>
          {filter.tag && !tags.some((t) => t.name === filter.tag) && <option value={filter.tag}>{filter.tag}</option>}
          {tags.map((t) => (
            <option key={t.id} value={t.name}>
              {t.name}
            </option>
          ))}
        </select>
        {predicate && (
          <button
            type="button"
            data-testid="filter-clear"
            onClick={() =>
              tabs.setFilter((f) => ({ selected_at: f.selected_at }))
            }
          >
            Clear
          </button>
        )}
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
      {errors.map((e) => (
        <div key={e} className="error" data-testid="traffic-view-error" role="alert">
          {e}
          {e === tabs.error && (
            <button type="button" className="dismiss" onClick={tabs.dismissError} aria-label="Dismiss">
              ×
            </button>
          )}
        </div>
      ))}
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
          <span className="c-tags" role="columnheader">Tags</span>
        </div>
        <div className="scroll" ref={scrollRef} onScroll={(e) => (atTop.current = e.currentTarget.scrollTop === 0)}>
          {feed.loading && total === 0 && <p className="empty">Loading traffic…</p>}
          {!feed.loading && count === 0 && (
            <p className="empty" data-testid="traffic-empty">
              {predicate ? "No entry matches the filter." : "No traffic yet. Entries appear here as they are captured."}
            </p>
          )}
          <div style={{ height: virtualizer.getTotalSize(), position: "relative" }}>
            {items.map((item) => {
              const row = rowAt(item.index);
              const selected = row.id === selectedId;
              const rowTags = matcher.tagsOf(row);
              return (
                <div
                  key={row.id}
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
                  <span className="c-host" title={row.host}>
                    {rowTags.map((t) => (
                      <i key={t.id} className="tag-dot" style={{ background: t.color }} title={t.name} />
                    ))}
                    {row.host}
                  </span>
                  <span className="c-path" title={pathWithQuery(row)}>{pathWithQuery(row)}</span>
                  <span className="c-type" data-testid="cell-type" title={row.response_content_type ?? undefined}>
                    {shortType(row.response_content_type)}
                  </span>
                  <span className="c-size">{formatSize(row.response_size)}</span>
                  <span className="c-dur">{formatDuration(row.duration_ms)}</span>
                  <span className="c-tags">
                    {rowTags.map((t) => (
                      <TagChip key={t.id} tag={t} />
                    ))}
                  </span>
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

// The tabs above the toolbar: click to switch, double-click (or the pencil) to rename, × to close, + to add.
function TabStrip({ tabs }: { tabs: TabsApi }) {
  const [editing, setEditing] = useState<string | null>(null);
  const [draft, setDraft] = useState("");
  const startRename = (tab: Tab) => {
    if (!tabs.own(tab)) return;
    setEditing(tab.id);
    setDraft(tab.name);
  };
  const commit = () => {
    if (editing && draft.trim()) tabs.rename(editing, draft);
    setEditing(null);
  };
  return (
    <div className="tab-strip" role="tablist" aria-label="Traffic tabs" data-testid="tab-strip">
      {tabs.loading && <span className="muted">Loading tabs…</span>}
      {tabs.tabs.map((tab) => {
        const active = tab.id === tabs.active?.id;
        const own = tabs.own(tab);
        if (editing === tab.id) {
          return (
            <input
              key={tab.id}
              className="tab-name-input"
              data-testid="tab-name-input"
              aria-label="Tab name"
              autoFocus
              maxLength={100}
              value={draft}
              onChange={(e) => setDraft(e.target.value)}
              onBlur={commit}
              onKeyDown={(e) => {
                if (e.key === "Enter") commit();
                if (e.key === "Escape") setEditing(null);
                e.stopPropagation();
              }}
            />
          );
        }
        return (
          <span key={tab.id} className={`tab${active ? " active" : ""}`} data-testid="tab" data-tab-name={tab.name} data-active={active}>
            <button
              type="button"
              role="tab"
              aria-selected={active}
              className="tab-name"
              data-testid="tab-select"
              onClick={() => tabs.select(tab.id)}
              onDoubleClick={() => startRename(tab)}
              title={own ? "Double-click to rename" : "Shared with the workspace"}
            >
              {tab.name}
              {!own && <span className="muted"> (shared)</span>}
            </button>
            {active && own && (
              <button type="button" className="tab-icon" data-testid="tab-rename" aria-label={`Rename ${tab.name}`} onClick={() => startRename(tab)}>
                ✎
              </button>
            )}
            {own && (
              <button type="button" className="tab-icon" data-testid="tab-close" aria-label={`Close ${tab.name}`} onClick={() => tabs.close(tab.id)}>
                ×
              </button>
            )}
          </span>
        );
      })}
      <button type="button" className="tab-add" data-testid="tab-add" aria-label="Add a tab" onClick={tabs.add} disabled={tabs.loading}>
        +
      </button>
      <span className="spacer" />
      <span className={`save-state muted save-${tabs.saveState}`} data-testid="tabs-save-state" role="status">
        {tabs.loading ? "" : tabs.saveState === "saving" ? "saving…" : tabs.saveState === "error" ? "not saved" : "saved"}
      </span>
    </div>
  );
}
