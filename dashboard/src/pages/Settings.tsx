// The Settings page (issue 17): not built yet.
import { Page } from "../ui";

export function SettingsPage() {
  return (
    <Page title="Settings" testId="page-settings">
      <p className="empty">This page is not built yet.</p>
    </Page>
  );
}
