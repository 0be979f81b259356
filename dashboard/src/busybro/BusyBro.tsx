// BusyBro in the dashboard (docs/busybro.md, "The dashboard"): a chat panel beside every page, opened from the
// header's BusyBro button or from an entry's "Ask BusyBro about this host". The thread lives in
// <BusyBroProvider> (it survives closing the panel and changing pages, not a reload or a sign-out).
//
// Each question is one POST to the `ask` function, streamed as server-sent events (./sse.ts): `text` deltas are
// appended to the answer's bubble and rendered as sanitized Markdown once per animation frame, `tool` labels are
// shown as progress lines while the tool runs (gone when the text resumes), `done` replaces the bubble with the
// authoritative answer, `error` (or a non-200 answer such as 503 busybro_not_configured) becomes an error bubble
// with Retry. Stop aborts the request (the server's loop stops with it) and keeps what streamed, tagged
// "stopped". The last finished answer has Regenerate: the same question again, with the thread before it.
// Links to app routes (/devices?uuid=…, /?entry=…) navigate in the app; others open in a new tab.
import type { Session, SupabaseClient } from "@supabase/supabase-js";
import {
  type KeyboardEvent,
  type MouseEvent,
  type ReactNode,
  createContext,
  useCallback,
  useContext,
  useEffect,
  useMemo,
  useRef,
  useState,
} from "react";
import { useLocation } from "wouter";
import { type DashboardConfig, loadConfig } from "../config";
import { renderMarkdown } from "./markdown";
import { type AskFrame, AskError, type HistoryTurn, MAX_CONTENT, MAX_HISTORY, MAX_QUESTION, askStream } from "./sse";
import "./busybro.css";

type Status = "streaming" | "done" | "stopped" | "error";

interface Question {
  id: number;
  role: "user";
  content: string;
}

interface Answer {
  id: number;
  role: "assistant";
  content: string;
  status: Status;
  /** The message of a failed answer (an `error` frame, a refusal, the network). */
  error?: string;
  /** Progress lines of the tools running now (cleared when the text resumes and at the end). */
  tools: string[];
}

type Item = Question | Answer;

export interface BusyBroApi {
  open: boolean;
  setOpen: (open: boolean) => void;
  /** Opens the panel and asks `question` (or puts it in the box when an answer is still streaming). */
  ask: (question: string) => void;
}

const BusyBroContext = createContext<BusyBroApi | null>(null);

/** The panel's controls, or null outside <BusyBroProvider> (callers then show nothing). */
export function useBusyBro(): BusyBroApi | null {
  return useContext(BusyBroContext);
}

/** The question "Ask BusyBro about this host" sends. */
export function hostQuestion(host: string): string {
  return `How does ${host} work? Inspect its captured requests.`;
}

/** The finished turns of a thread as `ask`'s history: question and answer pairs (failed ones left out). */
export function historyOf(items: Item[]): HistoryTurn[] {
  const turns: HistoryTurn[] = [];
  for (let i = 0; i + 1 < items.length; i++) {
    const q = items[i];
    const a = items[i + 1];
    if (q.role !== "user" || a.role !== "assistant") continue;
    if ((a.status === "done" || a.status === "stopped") && a.content.trim()) {
      turns.push({ role: "user", content: q.content.slice(0, MAX_CONTENT) }, { role: "assistant", content: a.content.slice(0, MAX_CONTENT) });
    }
    i++;
  }
  return turns.slice(-MAX_HISTORY);
}

let configPromise: Promise<DashboardConfig> | null = null;

function apiConfig(): Promise<DashboardConfig> {
  if (!configPromise) {
    configPromise = loadConfig();
    configPromise.catch(() => {
      configPromise = null; // asked again next time
    });
  }
  return configPromise;
}

/** Wide enough that the panel sits beside the page (busybro.css docks it at the same width). */
const DOCKED = "(min-width: 1000px)";

export function BusyBroProvider({ supabase, session, children }: { supabase: SupabaseClient; session: Session; children: ReactNode }) {
  const [open, setOpen] = useState(false);
  const [items, setItems] = useState<Item[]>([]);
  const [draft, setDraft] = useState("");
  const itemsRef = useRef(items);
  itemsRef.current = items;
  const controller = useRef<AbortController | null>(null);
  const nextId = useRef(1);
  const streaming = items.some((i) => i.role === "assistant" && i.status === "streaming");
  const streamingRef = useRef(streaming);
  streamingRef.current = streaming;
  const sessionRef = useRef(session);
  sessionRef.current = session;

  useEffect(() => () => controller.current?.abort(), []);
  useEffect(() => {
    document.body.classList.toggle("busybro-open", open);
    return () => document.body.classList.remove("busybro-open");
  }, [open]);

  const patch = useCallback((id: number, change: (a: Answer) => Answer) => {
    setItems((list) => list.map((item) => (item.id === id && item.role === "assistant" ? change(item) : item)));
  }, []);

  /** Streams the answer to `question` into a new bubble appended to `before` (which ends with the question). */
  const run = useCallback(
    (before: Item[], question: string, history: HistoryTurn[]) => {
      const id = nextId.current++;
      setItems([...before, { id, role: "assistant", content: "", status: "streaming", tools: [] }]);
      const abort = new AbortController();
      controller.current = abort;
      let text = "";
      let frame = 0;
      const flush = () => {
        frame = 0;
        const now = text;
        patch(id, (a) => (a.status === "streaming" ? { ...a, content: now, tools: [] } : a));
      };
      const finish = (change: (a: Answer) => Answer) => {
        if (frame) cancelAnimationFrame(frame);
        frame = 0;
        patch(id, change);
        if (controller.current === abort) controller.current = null;
      };
      let ended = false;
      const onFrame = (f: AskFrame) => {
        if (ended) return;
        if (f.event === "text") {
          text += f.delta;
          if (!frame) frame = requestAnimationFrame(flush);
        } else if (f.event === "tool") {
          const label = f.label;
          if (frame) {
            cancelAnimationFrame(frame);
            frame = 0;
          }
          const now = text;
          patch(id, (a) => (a.status === "streaming" ? { ...a, content: now, tools: [...a.tools, label].slice(-4) } : a));
        } else if (f.event === "done") {
          ended = true;
          text = f.answer || text;
          const answer = text;
          finish((a) => ({ ...a, content: answer, status: "done", tools: [] }));
        } else {
          ended = true;
          const answer = text;
          const message = f.message;
          finish((a) => ({ ...a, content: answer, status: "error", error: message, tools: [] }));
        }
      };
      void (async () => {
        try {
          const config = await apiConfig();
          const { data } = await supabase.auth.getSession();
          const token = data.session?.access_token ?? sessionRef.current.access_token;
          if (abort.signal.aborted) throw new DOMException("stopped", "AbortError");
          await askStream({ apiUrl: config.url, anonKey: config.anonKey, accessToken: token, question, history, signal: abort.signal, onFrame });
          if (!ended) {
            ended = true;
            const answer = text;
            finish((a) => ({ ...a, content: answer, status: "error", error: "The connection closed before the answer was finished.", tools: [] }));
          }
        } catch (err) {
          if (ended) return;
          ended = true;
          const answer = text;
          if (abort.signal.aborted) {
            finish((a) => ({ ...a, content: answer, status: "stopped", tools: [] }));
          } else {
            const message =
              err instanceof AskError ? err.message : `BusyBro could not be reached: ${err instanceof Error ? err.message : String(err)}`;
            finish((a) => ({ ...a, content: answer, status: "error", error: message, tools: [] }));
          }
        }
      })();
    },
    [supabase, patch],
  );

  const send = useCallback(
    (raw: string): boolean => {
      const question = raw.trim().slice(0, MAX_QUESTION);
      if (!question || streamingRef.current) return false;
      const list = itemsRef.current;
      const history = historyOf(list);
      run([...list, { id: nextId.current++, role: "user", content: question }], question, history);
      return true;
    },
    [run],
  );

  /** Regenerate (a finished answer) or Retry (a failed one): the question again with the thread before it. */
  const reask = useCallback(
    (answerId: number) => {
      if (streamingRef.current) return;
      const list = itemsRef.current;
      const at = list.findIndex((i) => i.id === answerId);
      const question = at > 0 ? list[at - 1] : null;
      if (!question || question.role !== "user") return;
      run(list.slice(0, at), question.content, historyOf(list.slice(0, at - 1)));
    },
    [run],
  );

  const stop = useCallback(() => controller.current?.abort(), []);

  const clear = useCallback(() => {
    controller.current?.abort();
    controller.current = null;
    setItems([]);
  }, []);

  const api = useMemo<BusyBroApi>(
    () => ({
      open,
      setOpen,
      ask: (question: string) => {
        setOpen(true);
        if (!send(question)) setDraft(question);
      },
    }),
    [open, send],
  );

  return (
    <BusyBroContext.Provider value={api}>
      {children}
      {open && (
        <BusyBroPanel
          items={items}
          streaming={streaming}
          draft={draft}
          setDraft={setDraft}
          send={send}
          stop={stop}
          reask={reask}
          clear={clear}
          close={() => setOpen(false)}
        />
      )}
    </BusyBroContext.Provider>
  );
}

/** The header's button that opens and closes the panel. */
export function BusyBroToggle() {
  const api = useBusyBro();
  if (!api) return null;
  return (
    <button
      type="button"
      className={`busybro-toggle${api.open ? " on" : ""}`}
      data-testid="busybro-toggle"
      aria-expanded={api.open}
      aria-controls="busybro-panel"
      title="Ask BusyBro, the Busymate assistant"
      onClick={() => api.setOpen(!api.open)}
    >
      BusyBro
    </button>
  );
}

interface PanelProps {
  items: Item[];
  streaming: boolean;
  draft: string;
  setDraft: (text: string) => void;
  send: (text: string) => boolean;
  stop: () => void;
  reask: (answerId: number) => void;
  clear: () => void;
  close: () => void;
}

function BusyBroPanel({ items, streaming, draft, setDraft, send, stop, reask, clear, close }: PanelProps) {
  const [, navigate] = useLocation();
  const input = useRef<HTMLTextAreaElement>(null);
  const thread = useRef<HTMLDivElement>(null);
  const pinned = useRef(true); // the thread follows new text while the reader is at its bottom

  useEffect(() => {
    input.current?.focus();
  }, []);

  useEffect(() => {
    const el = thread.current;
    if (el && pinned.current) el.scrollTop = el.scrollHeight;
  }, [items]);

  const submit = () => {
    if (send(draft)) {
      setDraft("");
      pinned.current = true;
    }
  };

  const onKeyDown = (e: KeyboardEvent<HTMLElement>) => {
    e.stopPropagation(); // typing here never reaches the pages' shortcuts (/, Enter, arrows, Escape)
    if (e.key === "Escape") {
      e.preventDefault();
      close();
    }
  };

  const onInputKey = (e: KeyboardEvent<HTMLTextAreaElement>) => {
    if (e.key === "Enter" && !e.shiftKey && !e.nativeEvent.isComposing) {
      e.preventDefault();
      submit();
    }
  };

  // Links of the answers: app routes through the router (under the app's base), the rest in a new tab.
  const onClick = (e: MouseEvent<HTMLDivElement>) => {
    const link = (e.target as HTMLElement).closest("a[data-route]");
    if (!link || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    navigate(link.getAttribute("data-route") ?? "/");
    if (!window.matchMedia(DOCKED).matches) close(); // the panel covers the page here: show the page
  };

  const last = items[items.length - 1];

  return (
    <aside className="busybro" id="busybro-panel" data-testid="busybro-panel" aria-label="BusyBro" onKeyDown={onKeyDown}>
      <div className="busybro-head">
        <strong>BusyBro</strong>
        <span className="muted">your Busymate assistant</span>
        <span className="spacer" />
        {items.length > 0 && (
          <button type="button" data-testid="busybro-clear" onClick={clear} title="Start a new conversation">
            New chat
          </button>
        )}
        <button type="button" data-testid="busybro-close" onClick={close} aria-label="Close BusyBro" title="Close (Esc)">
          ×
        </button>
      </div>
      <div
        className="busybro-thread"
        data-testid="busybro-thread"
        ref={thread}
        onClick={onClick}
        onScroll={(e) => {
          const el = e.currentTarget;
          pinned.current = el.scrollHeight - el.scrollTop - el.clientHeight < 40;
        }}
        aria-live="polite"
        aria-busy={streaming}
      >
        {items.length === 0 && (
          <p className="busybro-hint muted" data-testid="busybro-empty">
            Ask about your devices, traffic, services, tags or how a captured API works. BusyBro reads what your role
            may see and acts only where your role may edit.
          </p>
        )}
        {items.map((item) =>
          item.role === "user" ? (
            <div key={item.id} className="bb-msg bb-user" data-testid="busybro-question">
              {item.content}
            </div>
          ) : (
            <AnswerBubble key={item.id} answer={item} last={item === last} busy={streaming} reask={reask} />
          ),
        )}
      </div>
      <form
        className="busybro-compose"
        onSubmit={(e) => {
          e.preventDefault();
          submit();
        }}
      >
        <textarea
          ref={input}
          data-testid="busybro-input"
          aria-label="Your question for BusyBro"
          placeholder="Ask BusyBro… (Enter sends, Shift+Enter for a new line)"
          rows={2}
          maxLength={MAX_QUESTION}
          value={draft}
          onChange={(e) => setDraft(e.target.value)}
          onKeyDown={onInputKey}
        />
        {streaming ? (
          <button type="button" className="busybro-stop" data-testid="busybro-stop" onClick={stop}>
            Stop
          </button>
        ) : (
          <button type="submit" className="busybro-send" data-testid="busybro-send" disabled={!draft.trim()}>
            Send
          </button>
        )}
      </form>
    </aside>
  );
}

function AnswerBubble({ answer, last, busy, reask }: { answer: Answer; last: boolean; busy: boolean; reask: (id: number) => void }) {
  const html = useMemo(() => renderMarkdown(answer.content), [answer.content]);
  const waiting = answer.status === "streaming" && !answer.content && answer.tools.length === 0;
  return (
    <div className={`bb-msg bb-bot bb-${answer.status}`} data-testid="busybro-answer" data-status={answer.status}>
      {answer.content && <div className="bb-md" data-testid="busybro-answer-text" dangerouslySetInnerHTML={{ __html: html }} />}
      {waiting && (
        <span className="bb-typing" data-testid="busybro-typing" aria-label="BusyBro is thinking">
          <i />
          <i />
          <i />
        </span>
      )}
      {answer.status === "streaming" &&
        answer.tools.map((label, i) => (
          <div key={i} className={`bb-tool${i === answer.tools.length - 1 ? " running" : ""}`} data-testid="busybro-tool" role="status">
            {label}
          </div>
        ))}
      {answer.status === "stopped" && (
        <span className="bb-tag" data-testid="busybro-stopped">
          {answer.content ? "stopped" : "stopped before any answer"}
        </span>
      )}
      {answer.status === "error" && (
        <div className="bb-error" role="alert" data-testid="busybro-error">
          {answer.error}
        </div>
      )}
      {last && !busy && answer.status === "error" && (
        <div className="bb-actions">
          <button type="button" data-testid="busybro-retry" onClick={() => reask(answer.id)}>
            Retry
          </button>
        </div>
      )}
      {last && !busy && (answer.status === "done" || answer.status === "stopped") && (
        <div className="bb-actions">
          <button type="button" data-testid="busybro-regenerate" onClick={() => reask(answer.id)} title="Ask the same question again">
            Regenerate
          </button>
        </div>
      )}
    </div>
  );
}
