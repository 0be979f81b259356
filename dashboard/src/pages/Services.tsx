// The Service groups page (issue 17): not built yet.
import { Page } from "../ui";

export function ServicesPage() {
  return (
    <Page title="Service groups" testId="page-services">
      <p className="empty">This page is not built yet.</p>
    </Page>
  );
}
