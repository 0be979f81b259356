// Runtime configuration: ./config.json beside index.html, {"url": <API base URL>, "anonKey": <publishable key>}.
// The gateway generates it; a static host against a remote backend writes its own.

export interface DashboardConfig {
  url: string;
  anonKey: string;
}

export class ConfigError extends Error {}

export async function loadConfig(): Promise<DashboardConfig> {
  let response: Response;
  try {
    response = await fetch("./config.json", { cache: "no-store" });
  } catch (err) {
    throw new ConfigError(`config.json could not be fetched: ${String(err)}`);
  }
  if (!response.ok) {
    throw new ConfigError(
      `config.json is missing (HTTP ${response.status}). Serve it beside index.html as ` +
        `{"url": "<API base URL>", "anonKey": "<anon key>"}.`,
    );
  }
  let body: unknown;
  try {
    body = await response.json();
  } catch {
    throw new ConfigError("config.json is not valid JSON.");
  }
  const { url, anonKey } = (body ?? {}) as Partial<DashboardConfig>;
  if (typeof url !== "string" || !url || typeof anonKey !== "string" || !anonKey) {
    throw new ConfigError('config.json must hold {"url": "<API base URL>", "anonKey": "<anon key>"}.');
  }
  return { url: url.replace(/\/+$/, ""), anonKey };
}

// Whether the API answers at all (any HTTP answer counts; a network error or timeout does not).
export async function probeApi(config: DashboardConfig): Promise<void> {
  const controller = new AbortController();
  const timer = window.setTimeout(() => controller.abort(), 8000);
  try {
    await fetch(`${config.url}/auth/v1/health`, { headers: { apikey: config.anonKey }, signal: controller.signal });
  } catch {
    throw new ConfigError(`The API at ${config.url} does not answer. Is the stack running (busymate up)?`);
  } finally {
    window.clearTimeout(timer);
  }
}
