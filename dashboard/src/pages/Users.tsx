// The Users and roles page (issue 17): not built yet.
import { Page } from "../ui";

export function UsersPage() {
  return (
    <Page title="Users and roles" testId="page-users">
      <p className="empty">This page is not built yet.</p>
    </Page>
  );
}
