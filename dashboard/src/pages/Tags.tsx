// The Tags page (issue 17, Settings → Tags): every tag with its color and match patterns; `/tags?id=<id>` opens
// one (`?id=new` a new one), selecting pushes a history entry so back returns. With tags:edit: create, edit and
// delete through upsert_tag / delete_tag (the database's own checks, e.g. a taken name, are shown as it words
// them). Tags have no broadcast topic; the list follows public.tags through Realtime's postgres_changes.
import { useEffect, useState } from "react";
import { useApp } from "../app";
import { ErrorNote, Loading, Page, useQuery } from "../ui";
import type { Tag } from "./services-data";
import { FormFooter, ListEditor, onListKeys, useIdParam, useScrollIntoView, useTableChanges } from "./services-shared";

export function TagsPage() {
  const { supabase, can } = useApp();
  const [id, select] = useIdParam("/tags");
  const canEdit = can("tags", "edit");
  const tags = useQuery<Tag[]>(
    () => supabase.from("tags").select("id,name,color,match_patterns,created_at").order("name"),
    [supabase],
  );
  useTableChanges("tags", () => tags.reload());
  const [filter, setFilter] = useState("");
  const [created, setCreated] = useState<string | null>(null); // a new item's form reopens saying "Saved."

  const creating = id === "new" && canEdit;
  const selected = id && !creating ? (tags.data?.find((t) => t.id === id) ?? null) : null;
  const missing = id && !creating && tags.data && !tags.loading && !selected;
  const needle = filter.trim().toLowerCase();
  const shown = (tags.data ?? []).filter(
    (t) => !needle || t.name.toLowerCase().includes(needle) || t.match_patterns.some((p) => p.toLowerCase().includes(needle)),
  );

  return (
    <Page
      title="Tags"
      testId="page-tags"
      actions={
        canEdit && (
          <button type="button" data-testid="tag-new" onClick={() => select("new")}>
            New tag
          </button>
        )
      }
    >
      <ErrorNote error={tags.error} />
      <div className={`catalog${id ? " has-selection" : ""}`}>
        <div className="catalog-list">
          <input
            type="search"
            className="catalog-filter"
            aria-label="Filter tags"
            placeholder="Filter by name or pattern"
            data-testid="tag-filter"
            value={filter}
            onChange={(e) => setFilter(e.target.value)}
          />
          {tags.data == null && !tags.error && <Loading what="tags" />}
          {tags.data?.length === 0 && <p className="empty">No tags yet.</p>}
          <ul data-testid="tag-list" onKeyDown={onListKeys}>
            {shown.map((t) => (
              <TagRow key={t.id} tag={t} selected={t.id === id} onSelect={() => {
                  setCreated(null);
                  select(t.id);
                }} />
            ))}
          </ul>
        </div>
        <div className="catalog-detail">
          {missing && (
            <p className="notice" data-testid="tag-missing">
              No tag {id} (it may have been deleted).
            </p>
          )}
          {!id && tags.data != null && tags.data.length > 0 && <p className="empty">Choose a tag to see its patterns.</p>}
          {(creating || selected) && (
            <TagDetail
              key={selected?.id ?? "new"}
              tag={selected}
              canEdit={canEdit}
              justCreated={created != null && created === id}
              onSaved={(savedId) => {
                if (savedId !== id) setCreated(savedId);
                tags.reload();
                if (savedId !== id) select(savedId);
              }}
              onDeleted={() => {
                tags.reload();
                select(null);
              }}
              onClose={() => select(null)}
            />
          )}
        </div>
      </div>
    </Page>
  );
}

function Swatch({ color }: { color: string }) {
  return <span className="swatch" style={{ background: color }} data-testid="tag-swatch" data-color={color} aria-hidden="true" />;
}

function TagRow({ tag, selected, onSelect }: { tag: Tag; selected: boolean; onSelect: () => void }) {
  const ref = useScrollIntoView<HTMLLIElement>(selected);
  const sample = tag.match_patterns.slice(0, 3).join(", ") + (tag.match_patterns.length > 3 ? ` +${tag.match_patterns.length - 3}` : "");
  return (
    <li ref={ref}>
      <button
        type="button"
        className={`catalog-row${selected ? " selected" : ""}`}
        aria-current={selected ? "true" : undefined}
        data-testid="tag-row"
        data-id={tag.id}
        onClick={onSelect}
      >
        <Swatch color={tag.color} />
        <span className="catalog-row-text">
          <strong data-testid="tag-row-name">{tag.name}</strong>
          <span className="muted">{sample || "no patterns"}</span>
        </span>
      </button>
    </li>
  );
}

function TagDetail({
  tag,
  canEdit,
  justCreated,
  onSaved,
  onDeleted,
  onClose,
}: {
  tag: Tag | null;
  canEdit: boolean;
  justCreated: boolean;
  onSaved: (id: string) => void;
  onDeleted: () => void;
  onClose: () => void;
}) {
  const { supabase } = useApp();
  const [name, setName] = useState(tag?.name ?? "");
  const [color, setColor] = useState(tag?.color ?? "#888888");
  const [patterns, setPatterns] = useState<string[]>(tag?.match_patterns ?? []);
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);
  const [saved, setSaved] = useState(justCreated);
  useEffect(() => {
    if (justCreated) setSaved(true); // the page may learn it after the form opened (the URL changes first)
  }, [justCreated]);

  const head = (title: string) => (
    <div className="catalog-card-head">
      <h2>{title}</h2>
      <span className="spacer" />
      <button type="button" className="catalog-close" data-testid="tag-close" onClick={onClose}>
        Close
      </button>
    </div>
  );

  if (!canEdit && tag) {
    return (
      <article className="catalog-card" data-testid="tag-detail" data-id={tag.id}>
        {head("Tag")}
        <p className="tag-title">
          <Swatch color={tag.color} /> <strong data-testid="tag-detail-name">{tag.name}</strong>{" "}
          <code className="muted">{tag.color}</code>
        </p>
        <h3>Match patterns</h3>
        {tag.match_patterns.length === 0 ? (
          <p className="muted">No patterns.</p>
        ) : (
          <ul className="chips" data-testid="tag-patterns">
            {tag.match_patterns.map((p) => (
              <li key={p}>
                <code>{p}</code>
              </li>
            ))}
          </ul>
        )}
      </article>
    );
  }

  const save = async () => {
    setBusy(true);
    setError(null);
    setSaved(false);
    const { data, error: saveError } = await supabase.rpc("upsert_tag", {
      name,
      color,
      match_patterns: patterns,
      id: tag?.id ?? null,
    });
    setBusy(false);
    if (saveError) {
      setError(saveError.message);
      return;
    }
    setSaved(true);
    onSaved((data as Tag).id);
  };
  const remove = async () => {
    if (!tag) return;
    setBusy(true);
    setError(null);
    const { error: deleteError } = await supabase.rpc("delete_tag", { id: tag.id });
    setBusy(false);
    if (deleteError) setError(deleteError.message);
    else onDeleted();
  };

  return (
    <form
      className="catalog-card"
      data-testid="tag-detail"
      data-id={tag?.id ?? "new"}
      onSubmit={(e) => {
        e.preventDefault();
        void save();
      }}
    >
      {head(tag ? "Edit tag" : "New tag")}
      <div className="catalog-fields">
        <label>
          Name
          <input data-testid="tag-name" value={name} maxLength={60} onChange={(e) => setName(e.target.value)} />
        </label>
        <label className="catalog-color-field">
          Color
          <span className="color-pick">
            <input type="color" data-testid="tag-color" value={color} onChange={(e) => setColor(e.target.value)} />
            <code>{color}</code>
          </span>
        </label>
      </div>
      <h3>Match patterns</h3>
      <p className="muted">An entry whose host or path matches one of these gets the tag.</p>
      <ListEditor
        items={patterns}
        onChange={setPatterns}
        testId="tag-pattern"
        label="Add a match pattern"
        placeholder="*.doordash.com or /v1/orders*"
      />
      <FormFooter
        prefix="tag"
        error={error}
        saved={saved}
        busy={busy}
        existing={tag ? tag.name : null}
        onDelete={() => void remove()}
      />
    </form>
  );
}
