// The Tags page (issue 17): not built yet.
import { Page } from "../ui";

export function TagsPage() {
  return (
    <Page title="Tags" testId="page-tags">
      <p className="empty">This page is not built yet.</p>
    </Page>
  );
}
