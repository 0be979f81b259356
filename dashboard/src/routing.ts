// The app's routes live under the folder that holds index.html, whatever path a static host serves it from:
// the built module sits in <base>/assets/, so the base is its parent. Under `vite dev` the module is
// /src/..., and the base is "/".
export function appBase(): string {
  const here = new URL(import.meta.url);
  const parts = here.pathname.split("/");
  const assets = parts.lastIndexOf("assets");
  if (assets < 0) return "";
  return parts.slice(0, assets).join("/"); // "" at the root, "/sub" under a sub-path
}

/** The app's pages and their titles, in the navigation's order. */
export const PAGES = [
  { path: "/", label: "Traffic", section: "entries" },
  { path: "/devices", label: "Devices", section: "devices" },
  { path: "/breakpoints", label: "Breakpoints", section: "breakpoints" },
  { path: "/services", label: "Services", section: "services" },
  { path: "/tags", label: "Tags", section: "tags" },
  { path: "/users", label: "Users", section: "users" },
  { path: "/settings", label: "Settings", section: "global" },
] as const;
