// Pieces the Service groups and Tags pages share: the `?id=` deep link (select with a pushed history entry, so
// the browser's back button returns), a list editor for domains and match patterns, and a postgres_changes
// subscription for tables that have no broadcast topic (tags).
import { type KeyboardEvent, useEffect, useRef, useState } from "react";
import { useLocation, useSearch } from "wouter";
import { useApp } from "../app";
import { ErrorNote } from "../ui";
import "./catalog.css";

/** The `?id=` of the page's URL and a way to change it (a new history entry; null clears it). */
export function useIdParam(path: string): [string | null, (id: string | null) => void] {
  const id = new URLSearchParams(useSearch()).get("id");
  const [, navigate] = useLocation();
  return [id, (next) => navigate(next ? `${path}?id=${encodeURIComponent(next)}` : path)];
}

/** Splits what was typed into items: commas, spaces and new lines separate them. */
export function splitItems(text: string): string[] {
  return text
    .split(/[\s,]+/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

/**
 * An editable list of short strings (domains, match patterns): each item with a remove button, and an input
 * whose Enter (or the Add button) appends what was typed. `testId` prefixes the hooks: `<testId>-item`,
 * `<testId>-remove`, `<testId>-input`, `<testId>-add`.
 */
export function ListEditor({
  items,
  onChange,
  testId,
  placeholder,
  label,
}: {
  items: string[];
  onChange: (items: string[]) => void;
  testId: string;
  placeholder: string;
  label: string;
}) {
  const [draft, setDraft] = useState("");
  const add = () => {
    const more = splitItems(draft).filter((s) => !items.includes(s));
    if (more.length) onChange([...items, ...more.filter((s, i) => more.indexOf(s) === i)]);
    setDraft("");
  };
  const onKey = (e: KeyboardEvent<HTMLInputElement>) => {
    if (e.key === "Enter") {
      e.preventDefault();
      add();
    }
  };
  return (
    <div className="list-editor" data-testid={testId}>
      {items.length === 0 && <span className="muted">None yet.</span>}
      <ul>
        {items.map((item) => (
          <li key={item} data-testid={`${testId}-item`}>
            <code>{item}</code>
            <button
              type="button"
              className="icon-button"
              aria-label={`Remove ${item}`}
              data-testid={`${testId}-remove`}
              onClick={() => onChange(items.filter((x) => x !== item))}
            >
              ×
            </button>
          </li>
        ))}
      </ul>
      <div className="list-editor-add">
        <input
          aria-label={label}
          data-testid={`${testId}-input`}
          value={draft}
          placeholder={placeholder}
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={onKey}
        />
        <button type="button" data-testid={`${testId}-add`} onClick={add} disabled={!draft.trim()}>
          Add
        </button>
      </div>
    </div>
  );
}

/**
 * Calls `onChange` after any insert, update or delete on `public.<table>` that the user may see (Realtime's
 * postgres_changes; the table must be in the supabase_realtime publication).
 */
export function useTableChanges(table: string, onChange: () => void): void {
  const { supabase, session } = useApp();
  const handler = useRef(onChange);
  handler.current = onChange;
  useEffect(() => {
    let live = true;
    let channel: ReturnType<typeof supabase.channel> | null = null;
    void supabase.realtime.setAuth(session.access_token).then(() => {
      if (!live) return;
      channel = supabase
        .channel(`catalog-${table}-${Math.random().toString(36).slice(2, 8)}`)
        .on("postgres_changes", { event: "*", schema: "public", table }, () => handler.current())
        .subscribe();
    });
    return () => {
      live = false;
      if (channel) void supabase.removeChannel(channel);
    };
  }, [supabase, session.access_token, table]);
}

/** Scrolls the selected row into view once (a deep link may select a row far down the list). */
export function useScrollIntoView<T extends HTMLElement>(selected: boolean) {
  const ref = useRef<T>(null);
  useEffect(() => {
    if (selected) ref.current?.scrollIntoView({ block: "nearest" });
  }, [selected]);
  return ref;
}

/** Up and down move the focus through a list's rows (buttons; Enter opens the focused one). */
export function onListKeys(e: KeyboardEvent<HTMLElement>): void {
  if (e.key !== "ArrowDown" && e.key !== "ArrowUp") return;
  const rows = Array.from(e.currentTarget.querySelectorAll<HTMLButtonElement>("button.catalog-row"));
  const at = rows.indexOf(document.activeElement as HTMLButtonElement);
  const to = at < 0 ? 0 : Math.min(rows.length - 1, Math.max(0, at + (e.key === "ArrowDown" ? 1 : -1)));
  if (rows[to]) {
    e.preventDefault();
    rows[to].focus();
  }
}

/**
 * The end of a catalog form: the API's error, "Saved.", Save/Create, and Delete… with its confirm step (for an
 * existing item). Test ids are `<prefix>-error`, `-saved`, `-save`, `-delete`, `-delete-confirm`.
 */
export function FormFooter({
  prefix,
  error,
  saved,
  busy,
  existing,
  onDelete,
}: {
  prefix: string;
  error: string | null;
  saved: boolean;
  busy: boolean;
  existing: string | null; // the item's name when it exists, else null (a new one)
  onDelete: () => void;
}) {
  const [confirmDelete, setConfirmDelete] = useState(false);
  return (
    <>
      <ErrorNote error={error} testId={`${prefix}-error`} />
      {saved && !error && (
        <p className="notice" data-testid={`${prefix}-saved`} role="status">
          Saved.
        </p>
      )}
      <div className="catalog-actions">
        <button type="submit" className="primary" data-testid={`${prefix}-save`} disabled={busy}>
          {busy ? "Saving…" : existing != null ? "Save" : "Create"}
        </button>
        <span className="spacer" />
        {existing != null &&
          (confirmDelete ? (
            <>
              <span>Delete {existing}?</span>
              <button type="button" className="danger" data-testid={`${prefix}-delete-confirm`} disabled={busy} onClick={onDelete}>
                Delete
              </button>
              <button type="button" onClick={() => setConfirmDelete(false)}>
                Keep
              </button>
            </>
          ) : (
            <button type="button" data-testid={`${prefix}-delete`} onClick={() => setConfirmDelete(true)}>
              Delete…
            </button>
          ))}
      </div>
    </>
  );
}
