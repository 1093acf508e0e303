// A typed client of the Product API (docs/openapi.json). The dashboard is
// served by the API itself (/api/v1/admin/), so calls are same-origin and
// authenticate with the session cookie; every change carries the session's
// CSRF token (X-CSRF-Token).

export type Scope = "read" | "write" | "admin";

export interface Problem {
  type: string;
  title: string;
  status: number;
  detail: string;
}

export interface SessionView {
  csrf_token: string;
  scope: Scope;
  expires_at: string;
}

/** How a field changed on both sides is resolved (`manual`: parked for a person). */
export type Policy = "source_wins" | "target_wins" | "latest" | "manual";

export interface ObjectPolicies {
  policy?: Policy;
  fields?: Record<string, Policy>;
}

/** A connection's conflict policies: connection-wide, per object, per field (the most specific wins). */
export interface ConnectionPolicies {
  policy?: Policy;
  objects?: Record<string, ObjectPolicies>;
}

export interface ConnectionView {
  id: string;
  tenant: string;
  provider: string;
  status: string;
  base_url: string | null;
  webhook_scheme: string | null;
  settings: Record<string, string>;
  conflicts?: ConnectionPolicies;
  created_at: string;
}

/** A resource with its version (`ETag`), to send back as `If-Match`. */
export interface Tagged<T> {
  data: T;
  etag: string | null;
}

export interface ConnectionSummary extends ConnectionView {
  last_sync_at: string | null;
  next_sync_at: string | null;
  last_status: string | null;
  last_error: string | null;
}

export interface SummaryPage {
  connections: ConnectionSummary[];
  next_cursor: string | null;
}

export interface ConnectionPage {
  connections: ConnectionView[];
  next_cursor: string | null;
}

export interface LastResult {
  run_id: string;
  status: string;
  finished_at: string | null;
  error: string | null;
}

export interface TaskView {
  id: string;
  object: string;
  direction: string;
  priority: string;
  interval_secs: number;
  next_run_at: string;
  last_run_at: string | null;
  cursor: string | null;
  leased: boolean;
  stalled: boolean;
  last_result: LastResult | null;
}

export interface TaskPage {
  tasks: TaskView[];
  next_cursor: string | null;
}

export interface RunCounts {
  pages: number;
  fetched: number;
  created: number;
  updated: number;
  unchanged: number;
  deleted: number;
  requests: number;
  throttled: number;
}

export interface RunView {
  id: string;
  task_id: string;
  connection_id: string;
  object: string;
  status: string;
  state: string;
  started_at: string;
  finished_at: string | null;
  counts: RunCounts;
  error: string | null;
}

export interface RunPage {
  runs: RunView[];
  next_cursor: string | null;
}

export interface QueueView {
  name: string;
  state: string;
  unknown_reason: string | null;
  active: number | null;
  scheduled: number | null;
  locked: number | null;
  dead_lettered: number | null;
}

export interface Sample {
  count: number;
  ids: string[];
  more: boolean;
}

export interface Overdue extends Sample {
  oldest_task: string | null;
  oldest_since: string | null;
}

export interface FunctionView {
  function: string;
  last_invocation: string | null;
  last_success: string | null;
  last_failure: string | null;
  last_error_kind: string | null;
  failures_last_hour: number;
}

export interface Health {
  status: string;
  store_reachable: boolean;
  store_error: string | null;
  queues: QueueView[];
  functions: FunctionView[] | null;
  overdue_tasks: Overdue | null;
  needs_reauth: Sample | null;
}

export interface EntryView {
  id: number;
  source: string;
  reason: string;
  connection_id: string | null;
  message_id: string | null;
  at: string;
  bytes: number;
}

export interface EntryDetail extends EntryView {
  body_text: string | null;
  body_base64: string;
}

export interface EntryPage {
  entries: EntryView[];
  next_cursor: string | null;
}

export interface ReplayView {
  id: number;
  outcome: string;
  queue: string | null;
  jobs: number | null;
}

export interface ApiKeyView {
  id: string;
  name: string;
  scope: Scope;
  created_at: string;
  revoked_at: string | null;
}

export interface CreatedKey extends ApiKeyView {
  key: string;
}

export interface ObjectView {
  name: string;
  fields: string[];
  incremental: boolean;
  deletes: string;
  push: { create: boolean; update: boolean; delete: boolean } | null;
}

/** A setting a provider's connections need (GitHub's owner and repo). */
export interface SettingView {
  name: string;
  label: string;
  description?: string | null;
  example?: string | null;
  /** `null`: required. */
  default?: string | null;
}

export interface ProviderView {
  name: string;
  display_name: string | null;
  auth: string;
  objects: ObjectView[];
  settings?: SettingView[];
}

/** A connect session: send the browser to `connect_url` (once, before `expires_at`). */
export interface ConnectSession {
  id: string;
  connect_url: string;
  expires_at: string;
  connection_id: string;
}

/** Where the connect flow comes back to: this page of the dashboard, absolute. */
export function returnUrl(page: string): string {
  return `${window.location.origin}${import.meta.env.BASE_URL.replace(/\/$/, "")}/${page}`;
}

/** Starts the connect flow: a session, then the browser goes to the provider. */
export async function startConnect(body: {
  tenant: string;
  provider: string;
  return_page: string;
  connection_id?: string;
  base_url?: string | null;
  settings?: Record<string, string>;
}) {
  const { return_page, ...rest } = body;
  const s = await api.connectSession({ ...rest, base_url: rest.base_url || undefined, return_url: returnUrl(return_page) });
  browser.go(s.connect_url);
}

/** Leaves the dashboard for another page (replaceable in tests: jsdom does not navigate). */
export const browser = {
  go: (url: string) => window.location.assign(url),
};

export interface WebhookView {
  configured: boolean;
  scheme: string | null;
  active_secrets: number;
  url_path: string;
}

export interface WebhookSecretView extends WebhookView {
  secret: string | null;
}

export interface RuleView {
  tenant: string | null;
  kinds: string[];
  min_severity: string;
  channels: string[];
}

export interface NotificationsView {
  configured: boolean;
  channels: { name: string; kind: string }[];
  rules: RuleView[];
  default_route: RuleView | null;
  /** `store` once rules were saved here, else `file` (the configuration's). */
  rules_source: "store" | "file";
  /** The stored rules' version (0: none saved); sent back as If-Match. */
  rules_version: number;
  /** Every event kind a rule can name. */
  event_kinds: string[];
  outbox: { pending: number; delivered: number; dead: number } | null;
}

export interface HourStats {
  start: string;
  runs: number;
  failed: number;
  records: number;
  mean_duration_ms: number | null;
}

export interface RunStats {
  hours: HourStats[];
  truncated: boolean;
}

export interface ConflictField {
  field: string;
  base: unknown;
  ours: unknown;
  theirs: unknown;
  parked_at: string;
}

export interface ConflictView {
  connection_id: string;
  object: string;
  record_id: string;
  version: number;
  fields: ConflictField[];
}

export interface AuditView {
  key: string;
  object: string;
  record_id: string;
  at: string;
  entry: Record<string, unknown>;
}

export type ResolveBody = { take: "ours" | "theirs"; fields?: string[] } | { value: Record<string, unknown> };

export class ApiError extends Error {
  readonly status: number;
  readonly problem: Problem | null;
  constructor(status: number, problem: Problem | null, fallback: string) {
    super(problem ? `${problem.title}: ${problem.detail}` : fallback);
    this.status = status;
    this.problem = problem;
  }
}

export const API_BASE = "/api/v1";

let csrf: string | null = null;

/** Sets the CSRF token sent with every change (from the session). */
export function setCsrf(token: string | null): void {
  csrf = token;
}

type Query = Record<string, string | number | boolean | null | undefined>;

function url(path: string, query?: Query): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(query ?? {})) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return `${API_BASE}${path}${s ? `?${s}` : ""}`;
}

async function request<T>(method: string, path: string, opts: { query?: Query; body?: unknown; ifMatch?: string | null } = {}): Promise<Tagged<T>> {
  const headers: Record<string, string> = { Accept: "application/json" };
  if (opts.body !== undefined) headers["Content-Type"] = "application/json";
  if (method !== "GET" && csrf) headers["X-CSRF-Token"] = csrf;
  if (opts.ifMatch) headers["If-Match"] = opts.ifMatch;
  const res = await fetch(url(path, opts.query), {
    method,
    headers,
    credentials: "same-origin",
    body: opts.body === undefined ? undefined : JSON.stringify(opts.body),
  });
  if (!res.ok) {
    let problem: Problem | null = null;
    try {
      problem = (await res.json()) as Problem;
    } catch {
      problem = null;
    }
    throw new ApiError(res.status, problem, `${method} ${path}: HTTP ${res.status}`);
  }
  const etag = res.headers.get("ETag");
  if (res.status === 204) return { data: undefined as T, etag };
  const text = await res.text();
  return { data: (text ? JSON.parse(text) : undefined) as T, etag };
}

async function call<T>(method: string, path: string, opts: { query?: Query; body?: unknown } = {}): Promise<T> {
  return (await request<T>(method, path, opts)).data;
}

const enc = encodeURIComponent;

export const api = {
  session: () => call<SessionView>("GET", "/session"),
  signIn: (body: { api_key?: string; login_token?: string }) => call<SessionView>("POST", "/session", { body }),
  signOut: () => call<void>("DELETE", "/session"),

  health: () => call<Health>("GET", "/health"),

  connections: (q: { status?: string; provider?: string; tenant?: string; q?: string; cursor?: string | null; limit?: number }) =>
    call<ConnectionPage>("GET", "/connections", { query: q }),
  connectSession: (body: {
    tenant: string;
    provider: string;
    return_url: string;
    connection_id?: string;
    base_url?: string | null;
    settings?: Record<string, string>;
  }) =>
    call<ConnectSession>("POST", "/connect/sessions", { body }),
  createConnection: (body: { id: string; tenant: string; provider: string; base_url?: string | null; interval_secs?: number; objects?: string[]; settings?: Record<string, string> }) =>
    call<ConnectionView>("POST", "/connections", { body }),
  summaries: (q: { status?: string; provider?: string; tenant?: string; cursor?: string | null; limit?: number }) =>
    call<SummaryPage>("GET", "/connection-summaries", { query: q }),
  connection: (id: string) => call<ConnectionView>("GET", `/connections/${enc(id)}`),
  /** The connection with its version (ETag), for a change under If-Match. */
  connectionTagged: (id: string) => request<ConnectionView>("GET", `/connections/${enc(id)}`),
  /** Replaces the conflict policies, only at version `etag` (412 if it changed since). */
  setConflictPolicies: (id: string, conflicts: ConnectionPolicies, etag: string | null) =>
    request<ConnectionView>("PATCH", `/connections/${enc(id)}`, { body: { conflicts }, ifMatch: etag }),
  tasks: (id: string) => call<TaskPage>("GET", `/connections/${enc(id)}/tasks`, { query: { limit: 500 } }),
  syncNow: (id: string) => call<unknown>("POST", `/connections/${enc(id)}/sync`, { body: { full_resync: false } }),
  pause: (id: string) => call<ConnectionView>("POST", `/connections/${enc(id)}/pause`),
  resume: (id: string) => call<ConnectionView>("POST", `/connections/${enc(id)}/resume`),
  deleteConnection: (id: string) => call<void>("DELETE", `/connections/${enc(id)}`),
  updateConnection: (id: string, body: { interval_secs?: number; base_url?: string | null; settings?: Record<string, string> }) =>
    call<ConnectionView>("PATCH", `/connections/${enc(id)}`, { body }),

  webhook: (id: string) => call<WebhookView>("GET", `/connections/${enc(id)}/webhook`),
  setWebhook: (id: string, body: { scheme: string; secret?: string }) => call<WebhookSecretView>("PUT", `/connections/${enc(id)}/webhook`, { body }),
  rotateWebhook: (id: string) => call<WebhookSecretView>("POST", `/connections/${enc(id)}/webhook/rotate`),
  dropPreviousSecret: (id: string) => call<WebhookView>("DELETE", `/connections/${enc(id)}/webhook/previous`),
  removeWebhook: (id: string) => call<void>("DELETE", `/connections/${enc(id)}/webhook`),

  conflicts: (q: { connection_id?: string; cursor?: string | null; limit?: number }) =>
    call<{ conflicts: ConflictView[]; next_cursor: string | null }>("GET", "/conflicts", { query: q }),
  resolve: (c: { connection_id: string; object: string; record_id: string }, body: ResolveBody) =>
    call<unknown>("POST", `/connections/${enc(c.connection_id)}/objects/${enc(c.object)}/records/${enc(c.record_id)}/resolve`, { body }),
  audit: (id: string, cursor?: string | null) =>
    call<{ entries: AuditView[]; next_cursor: string | null }>("GET", `/connections/${enc(id)}/audit`, { query: { cursor, limit: 100 } }),

  runs: (q: { connection_id?: string; status?: string; since?: string; cursor?: string | null; limit?: number }) =>
    call<RunPage>("GET", "/runs", { query: q }),
  runStats: (hours = 24) => call<RunStats>("GET", "/run-stats", { query: { hours } }),
  run: (id: string) => call<RunView>("GET", `/runs/${enc(id)}`),

  quarantine: (cursor?: string | null) => call<EntryPage>("GET", "/quarantine", { query: { cursor, limit: 100 } }),
  quarantineEntry: (id: number) => call<EntryDetail>("GET", `/quarantine/${id}`),
  replay: (id: number) => call<ReplayView>("POST", `/quarantine/${id}/replay`),
  discard: (id: number) => call<void>("DELETE", `/quarantine/${id}`),

  notifications: () => call<NotificationsView>("GET", "/notifications"),
  saveRules: (body: { rules: RuleView[]; default_route: RuleView | null }, version: number) =>
    request<NotificationsView>("PUT", "/notifications/rules", { body, ifMatch: `"${version}"` }).then((r) => r.data),
  testNotification: (channel: string) => call<{ delivered: boolean; answer: string }>("POST", "/notifications/test", { body: { channel } }),

  providers: () => call<{ providers: ProviderView[] }>("GET", "/providers"),
  provider: (name: string) => call<ProviderView>("GET", `/providers/${enc(name)}`),

  apiKeys: () => call<{ keys: ApiKeyView[] }>("GET", "/api-keys"),
  createKey: (body: { name: string; scope: Scope }) => call<CreatedKey>("POST", "/api-keys", { body }),
  revokeKey: (id: string) => call<void>("DELETE", `/api-keys/${enc(id)}`),
};
