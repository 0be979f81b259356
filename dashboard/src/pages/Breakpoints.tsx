// The Breakpoints page (issue 17): not built yet.
import { Page } from "../ui";

export function BreakpointsPage() {
  return (
    <Page title="Breakpoints" testId="page-breakpoints">
      <p className="empty">This page is not built yet.</p>
    </Page>
  );
}
