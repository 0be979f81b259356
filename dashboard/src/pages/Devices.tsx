// The Devices page (issue 17): not built yet.
import { Page } from "../ui";

export function DevicesPage() {
  return (
    <Page title="Devices" testId="page-devices">
      <p className="empty">This page is not built yet.</p>
    </Page>
  );
}
