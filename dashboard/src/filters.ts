// The traffic filter: its saved state (the `filter` object of a workspace_tabs row), tags and how their patterns
// match an entry, and the compilation of a filter into one predicate over rows (built once per filter change, run
// for each held row; the table rescans only the rows that arrived since the last scan).
import type { EntryRow } from "./entries";

export const STATUS_CLASSES = ["1xx", "2xx", "3xx", "4xx", "5xx", "error"] as const;
export type StatusClass = (typeof STATUS_CLASSES)[number];

/** What a tab saves in workspace_tabs.filter (unknown keys are kept as they were). */
export interface FilterState {
  text?: string; // free text: "host/path?query" contains it (any letter case)
  host?: string; // contains, or a glob with * ? [
  path?: string; // contains, or a glob with * ? [ (path and query)
  method?: string; // exact, any letter case; "" for any
  status?: string[]; // status classes (any of them); empty for any
  device?: string; // a device uuid; "" for any
  type?: string; // the response content type contains it
  tag?: string; // a tag's name; "" for any
  selected_at?: string; // when the tab was last made the active one (the newest is restored)
  [key: string]: unknown;
}

export interface Tag {
  id: string;
  name: string;
  color: string;
  match_patterns: string[];
}

export function filterIsEmpty(f: FilterState): boolean {
  return !(
    f.text?.trim() ||
    f.host?.trim() ||
    f.path?.trim() ||
    f.method?.trim() ||
    (f.status && f.status.length) ||
    f.device ||
    f.type?.trim() ||
    f.tag
  );
}

/** How many of the filter's fields are set (for the phone's "Filters (n)" toggle). */
export function activeFieldCount(f: FilterState): number {
  let n = 0;
  for (const v of [f.host, f.path, f.method, f.device, f.type, f.tag]) if (typeof v === "string" && v.trim()) n++;
  if (f.status && f.status.length) n++;
  return n;
}

const GLOB_CHARS = /[*?[]/;

function escapeRegExp(s: string): string {
  return s.replace(/[.+^${}()|\\]/g, "\\$&");
}

/** A glob (`*` any run, `?` one character, `[...]` a class) as a whole-string, case-insensitive RegExp. */
export function globRegExp(glob: string): RegExp {
  let out = "";
  for (let i = 0; i < glob.length; i++) {
    const c = glob[i];
    if (c === "*") out += ".*";
    else if (c === "?") out += ".";
    else if (c === "[") {
      const end = glob.indexOf("]", i + 1);
      if (end < 0) out += "\\[";
      else {
        let body = glob.slice(i + 1, end);
        if (body.startsWith("!")) body = "^" + body.slice(1);
        out += `[${body.replace(/\\/g, "\\\\")}]`;
        i = end;
      }
    } else out += escapeRegExp(c);
  }
  try {
    return new RegExp(`^${out}$`, "i");
  } catch {
    return new RegExp(`^${escapeRegExp(glob)}$`, "i");
  }
}

/** "contains" (any letter case), or a whole-string glob when the text has `*`, `?` or `[` (as busymate tail). */
function textMatcher(raw: string): (value: string) => boolean {
  const text = raw.trim();
  if (GLOB_CHARS.test(text)) {
    const re = globRegExp(text);
    return (value) => re.test(value);
  }
  const needle = text.toLowerCase();
  return (value) => value.toLowerCase().includes(needle);
}

// ---- tags -----------------------------------------------------------------------------------------------------

// A tag pattern: `api.example.com` matches that host and its subdomains; a glob (`*.example.com`, `api-?.test`)
// matches the whole host; a pattern with a `/` also constrains the path: `/v1/*` (any host) or
// `api.example.com/v1/*`; a path part without a glob matches as a prefix.
interface CompiledPattern {
  host: ((host: string) => boolean) | null;
  path: ((path: string) => boolean) | null;
}

function compilePattern(raw: string): CompiledPattern | null {
  const pattern = raw.trim();
  if (!pattern) return null;
  const slash = pattern.indexOf("/");
  const hostPart = slash < 0 ? pattern : pattern.slice(0, slash);
  const pathPart = slash < 0 ? "" : pattern.slice(slash);
  let host: CompiledPattern["host"] = null;
  if (hostPart) {
    if (GLOB_CHARS.test(hostPart)) {
      const re = globRegExp(hostPart);
      host = (h) => re.test(h);
    } else {
      const exact = hostPart.toLowerCase();
      const suffix = `.${exact}`;
      host = (h) => {
        const lower = h.toLowerCase();
        return lower === exact || lower.endsWith(suffix);
      };
    }
  }
  let path: CompiledPattern["path"] = null;
  if (pathPart) {
    if (GLOB_CHARS.test(pathPart)) {
      const re = globRegExp(pathPart);
      path = (p) => re.test(p);
    } else path = (p) => p.startsWith(pathPart);
  }
  return { host, path };
}

/** The tags of an entry, in the tags' order; host-only answers are cached per host. */
export class TagMatcher {
  readonly tags: Tag[];
  private readonly hostOnly: { tag: Tag; pattern: CompiledPattern }[] = [];
  private readonly withPath: { tag: Tag; pattern: CompiledPattern }[] = [];
  private readonly byHost = new Map<string, Tag[]>();

  constructor(tags: Tag[]) {
    this.tags = tags;
    for (const tag of tags) {
      for (const raw of tag.match_patterns ?? []) {
        const pattern = compilePattern(raw);
        if (!pattern) continue;
        (pattern.path ? this.withPath : this.hostOnly).push({ tag, pattern });
      }
    }
  }

  private hostTags(host: string): Tag[] {
    let found = this.byHost.get(host);
    if (!found) {
      const seen = new Set<Tag>();
      for (const { tag, pattern } of this.hostOnly) if (!seen.has(tag) && pattern.host!(host)) seen.add(tag);
      found = this.tags.filter((t) => seen.has(t));
      if (this.byHost.size > 50_000) this.byHost.clear();
      this.byHost.set(host, found);
    }
    return found;
  }

  private readonly byRow = new WeakMap<EntryRow, Tag[]>();

  tagsOf(row: EntryRow): Tag[] {
    const byHost = this.hostTags(row.host);
    if (!this.withPath.length) return byHost;
    const cached = this.byRow.get(row);
    if (cached) return cached;
    const found = this.withPathTags(row, byHost);
    this.byRow.set(row, found);
    return found;
  }

  private withPathTags(row: EntryRow, byHost: Tag[]): Tag[] {
    const seen = new Set<Tag>(byHost);
    let more = false;
    for (const { tag, pattern } of this.withPath) {
      if (seen.has(tag)) continue;
      if ((!pattern.host || pattern.host(row.host)) && pattern.path!(row.path)) {
        seen.add(tag);
        more = true;
      }
    }
    return more ? this.tags.filter((t) => seen.has(t)) : byHost;
  }

  has(row: EntryRow, name: string): boolean {
    return this.tagsOf(row).some((t) => t.name === name);
  }
}

// ---- the predicate --------------------------------------------------------------------------------------------

function statusKey(row: EntryRow): StatusClass | null {
  if (row.status == null || row.status === 0) return row.error ? "error" : null;
  const klass = Math.floor(row.status / 100);
  return klass >= 1 && klass <= 5 ? (`${klass}xx` as StatusClass) : null;
}

/** Whether the predicate depends on the content type (rows whose type arrives later must be looked at again). */
export function usesType(f: FilterState): boolean {
  return !!f.type?.trim();
}

// The row's "host/path?query" in lower case, computed once per row (typing in the filter rescans every row).
function haystack(row: EntryRow): string {
  let lc = row._lc;
  if (lc === undefined) {
    const host = row.host.toLowerCase();
    lc = host + (row.query ? `${row.path}?${row.query}` : row.path).toLowerCase();
    row._lc = lc;
    row._hl = host.length;
  }
  return lc;
}

// A test of the host, answered once per distinct host (a feed has few hosts and many rows).
function perHost(test: (host: string) => boolean): (row: EntryRow) => boolean {
  const memo = new Map<string, boolean>();
  return (row) => {
    let hit = memo.get(row.host);
    if (hit === undefined) {
      hit = test(row.host);
      if (memo.size > 100_000) memo.clear();
      memo.set(row.host, hit);
    }
    return hit;
  };
}

/** One predicate for the whole filter, or null when the filter lets every row through. */
export function compileFilter(f: FilterState, tags: TagMatcher): ((row: EntryRow) => boolean) | null {
  if (filterIsEmpty(f)) return null;
  const tests: ((row: EntryRow) => boolean)[] = [];
  // Cheap and selective tests first.
  if (f.device) {
    const device = f.device;
    tests.push((row) => row.device_uuid === device);
  }
  if (f.method?.trim()) {
    const method = f.method.trim().toUpperCase();
    tests.push((row) => row.method === method || row.method.toUpperCase() === method);
  }
  if (f.status && f.status.length) {
    const wanted = new Set(f.status);
    tests.push((row) => {
      const key = statusKey(row);
      return key != null && wanted.has(key);
    });
  }
  if (f.host?.trim()) tests.push(perHost(textMatcher(f.host)));
  if (f.tag) {
    const name = f.tag;
    tests.push((row) => tags.has(row, name));
  }
  const text = f.text?.trim().toLowerCase();
  if (text) tests.push((row) => haystack(row).includes(text));
  if (f.path?.trim()) {
    const raw = f.path.trim();
    if (GLOB_CHARS.test(raw)) {
      const re = globRegExp(raw);
      tests.push((row) => re.test(row.query ? `${row.path}?${row.query}` : row.path));
    } else {
      const needle = raw.toLowerCase();
      tests.push((row) => haystack(row).indexOf(needle, row._hl) >= 0);
    }
  }
  if (f.type?.trim()) {
    const type = f.type.trim().toLowerCase();
    tests.push((row) => !!row.response_content_type && row.response_content_type.toLowerCase().includes(type));
  }
  if (tests.length === 1) return tests[0];
  return (row) => {
    for (const t of tests) if (!t(row)) return false;
    return true;
  };
}

/** The filter's fields that select rows (what is compared to decide whether the predicate changed). */
export function filterKey(f: FilterState): string {
  return JSON.stringify([f.text ?? "", f.host ?? "", f.path ?? "", f.method ?? "", f.status ?? [], f.device ?? "", f.type ?? "", f.tag ?? ""]);
}
