// HAR 1.2 export (issue 17): not built yet. The traffic toolbar places <HarExportButton> for the current
// filter; the entry detail uses it for one entry.
export function HarExportButton(props: { entryIds: () => string[]; label?: string; testId?: string }) {
  return (
    <button type="button" data-testid={props.testId ?? "export-har"} disabled title="Not built yet">
      {props.label ?? "Export HAR"}
    </button>
  );
}
