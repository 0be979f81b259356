// The sign-in form: email and password (supabase.auth.signInWithPassword).
import type { SupabaseClient } from "@supabase/supabase-js";
import { type FormEvent, useState } from "react";

export function SignIn({ supabase }: { supabase: SupabaseClient }) {
  const [email, setEmail] = useState("");
  const [password, setPassword] = useState("");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState(false);

  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(null);
    const { error: err } = await supabase.auth.signInWithPassword({ email, password });
    setBusy(false);
    if (err) setError(err.message || "Sign-in failed.");
  };

  return (
    <main className="center">
      <form className="card sign-in" onSubmit={submit}>
        <h1>Busymate</h1>
        <label>
          Email
          <input
            data-testid="email"
            type="email"
            autoComplete="username"
            required
            autoFocus
            value={email}
            onChange={(e) => setEmail(e.target.value)}
          />
        </label>
        <label>
          Password
          <input
            data-testid="password"
            type="password"
            autoComplete="current-password"
            required
            value={password}
            onChange={(e) => setPassword(e.target.value)}
          />
        </label>
        {error && (
          <p className="error" data-testid="sign-in-error" role="alert">
            {error}
          </p>
        )}
        <button data-testid="sign-in" type="submit" disabled={busy}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
      </form>
    </main>
  );
}
