// BusyBro's answers are Markdown (the web surface's formatting): rendered with marked (GFM, line breaks) and
// sanitized with DOMPurify before they reach the DOM, on every streamed delta (a half-written answer renders as
// far as it goes). Links are sorted as they are sanitized:
//  - an app route (`/devices?uuid=…`, `/?entry=…`, or an absolute URL of this very app) keeps its route in
//    `data-route` and gets an href under the app's base, so a click navigates in the app (the panel intercepts
//    it) and "open in a new tab" still lands on the right page;
//  - any other http(s) or mailto link opens in a new tab (`target=_blank`, `rel=noopener noreferrer`);
//  - other schemes (javascript:, data:) are dropped by DOMPurify.
// Images, forms and embedded content are not rendered at all: an answer may quote captured traffic, and a
// picture URL would be a request the reader never chose to make.
import DOMPurify from "dompurify";
import { Marked } from "marked";
import { appBase } from "../routing";

const markdown = new Marked({ gfm: true, breaks: true, async: false });

const FORBID_TAGS = ["img", "picture", "video", "audio", "iframe", "object", "embed", "form", "input", "button", "textarea", "select", "style", "svg", "math"];

/** The app route an href stands for (path, query and fragment relative to the app's base), or null. */
export function appRoute(href: string, base: string = appBase(), origin: string = window.location.origin): string | null {
  const raw = href.trim();
  if (!raw) return null;
  if (raw.startsWith("/") && !raw.startsWith("//")) return stripBase(raw, base);
  if (raw.startsWith("?")) return `/${raw}`;
  let url: URL;
  try {
    url = new URL(raw);
  } catch {
    return null;
  }
  if (url.origin !== origin || (url.protocol !== "http:" && url.protocol !== "https:")) return null;
  return stripBase(`${url.pathname}${url.search}${url.hash}`, base);
}

function stripBase(path: string, base: string): string {
  if (base && (path === base || path.startsWith(`${base}/`) || path.startsWith(`${base}?`))) {
    const rest = path.slice(base.length);
    return rest.startsWith("/") ? rest : `/${rest}`;
  }
  return path;
}

let hooked = false;

function hook(): void {
  if (hooked) return;
  hooked = true;
  DOMPurify.addHook("afterSanitizeAttributes", (node) => {
    if (node.tagName !== "A") return;
    const href = node.getAttribute("href");
    if (!href || href.startsWith("#")) return;
    const route = appRoute(href);
    if (route) {
      node.setAttribute("data-route", route);
      node.setAttribute("href", `${appBase()}${route}`);
      node.removeAttribute("target");
    } else {
      node.removeAttribute("data-route");
      node.setAttribute("target", "_blank");
      node.setAttribute("rel", "noopener noreferrer");
    }
  });
}

/** Markdown to sanitized HTML (safe for dangerouslySetInnerHTML). */
export function renderMarkdown(text: string): string {
  hook();
  const html = markdown.parse(text, { async: false });
  return DOMPurify.sanitize(html, { FORBID_TAGS, FORBID_ATTR: ["style"], ALLOW_DATA_ATTR: false, ALLOWED_URI_REGEXP: /^(?:https?:|mailto:|\/|\?|#)/i });
}
