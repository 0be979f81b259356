// Entry point: reads ./config.json, checks that the API answers, builds the supabase-js client and renders the
// app; a missing config or an API that does not answer is shown as a clear message, not a blank page.
import { type SupabaseClient, createClient } from "@supabase/supabase-js";
import { StrictMode } from "react";
import { createRoot } from "react-dom/client";
import { App } from "./App";
import { loadConfig, probeApi } from "./config";
import "./styles.css";

const root = createRoot(document.getElementById("root")!);

function Fatal({ message }: { message: string }) {
  return (
    <main className="center">
      <div className="card">
        <h1>Busymate</h1>
        <p className="error" role="alert" data-testid="startup-error">
          {message}
        </p>
        <button type="button" onClick={() => window.location.reload()}>
          Retry
        </button>
      </div>
    </main>
  );
}

async function start(): Promise<void> {
  root.render(<p className="boot">Loading Busymate…</p>);
  let supabase: SupabaseClient;
  try {
    const config = await loadConfig();
    await probeApi(config);
    supabase = createClient(config.url, config.anonKey, {
      auth: { persistSession: true, autoRefreshToken: true, storageKey: `busymate-auth-${new URL(config.url).host}` },
    });
  } catch (err) {
    root.render(<Fatal message={err instanceof Error ? err.message : String(err)} />);
    return;
  }
  root.render(
    <StrictMode>
      <App supabase={supabase} />
    </StrictMode>,
  );
}

void start();
