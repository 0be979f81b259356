// The detail of one captured entry (issue 17): not built yet.
export function EntryDetail({ entryId, onClose }: { entryId: string; onClose: () => void }) {
  return (
    <aside className="detail" data-testid="entry-detail" data-entry-id={entryId}>
      <div className="detail-head">
        <strong>Entry {entryId.slice(0, 8)}</strong>
        <span className="spacer" />
        <button type="button" data-testid="detail-close" onClick={onClose} aria-label="Close the detail">
          ×
        </button>
      </div>
      <p className="empty">The detail is not built yet.</p>
    </aside>
  );
}
