import { describe, expect, it } from "vitest";
import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { App } from "../App";
import { fakeApi, problem, SESSION } from "./fake";
import { hourly } from "../pages/Overview";

const HEALTH = {
  status: "ok",
  store_reachable: true,
  store_error: null,
  queues: [{ name: "sync-inbound", state: "counted", unknown_reason: null, active: 2, scheduled: 0, locked: 1, dead_lettered: 3 }],
  functions: [{ function: "SyncInboundWorker", last_invocation: "2026-12-07T10:00:00Z", last_success: "2026-12-07T10:00:00Z", last_failure: null, last_error_kind: null, failures_last_hour: 0 }],
  overdue_tasks: { count: 0, ids: [], more: false, oldest_task: null, oldest_since: null },
  needs_reauth: { count: 1, ids: ["acme-crm"], more: false },
};

describe("sign-in", () => {
  it("shows the form without a session, signs in with a key, and sends the CSRF token on changes", async () => {
    let signedIn = false;
    const { calls } = fakeApi({
      "GET /session": () => (signedIn ? { body: SESSION } : problem(401, "Unauthorized", "no session")),
      "POST /session": (c) => {
        if ((c.body as { api_key?: string }).api_key !== "sbk_good") return problem(401, "Unauthorized", "a valid API key is required");
        signedIn = true;
        return { status: 201, body: SESSION };
      },
      "GET /health": () => ({ body: HEALTH }),
      "GET /run-stats": () => ({ body: { hours: [], truncated: false } }),
      "DELETE /session": () => ({ status: 204 }),
    });
    render(<App />);
    const input = await screen.findByLabelText("API key");
    fireEvent.change(input, { target: { value: "sbk_bad" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("a valid API key is required");
    fireEvent.change(input, { target: { value: "sbk_good" } });
    fireEvent.click(screen.getByRole("button", { name: "Sign in" }));
    expect(await screen.findByRole("heading", { name: "Overview" })).toBeTruthy();
    // Health: the dead letters and the connection needing re-authorization.
    expect(await screen.findByRole("link", { name: "acme-crm" })).toBeTruthy();
    expect(screen.getByText("3 dead letters in sync-inbound")).toBeInTheDocument();
    expect(screen.getByText("SyncInboundWorker")).toBeInTheDocument();
    fireEvent.click(screen.getByRole("button", { name: "Sign out" }));
    await screen.findByLabelText("API key");
    const out = calls.find((c) => c.method === "DELETE" && c.path === "/session");
    expect(out?.headers["X-CSRF-Token"]).toBe(SESSION.csrf_token);
  });

  it("spends a one-time link from the address and removes it from the address bar", async () => {
    window.history.replaceState(null, "", "/api/v1/admin/?login=sbl_once");
    const { calls } = fakeApi({
      "POST /session": () => ({ status: 201, body: SESSION }),
      "GET /health": () => ({ body: HEALTH }),
      "GET /run-stats": () => ({ body: { hours: [], truncated: false } }),
    });
    render(<App />);
    expect(await screen.findByRole("heading", { name: "Overview" })).toBeTruthy();
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({ login_token: "sbl_once" });
    expect(window.location.search).toBe("");
  });
});

describe("pages", () => {
  it("connections: filters and pages on the server; shows the empty state", async () => {
    window.history.replaceState(null, "", "/api/v1/admin/connections");
    const { calls } = fakeApi({
      "GET /session": () => ({ body: SESSION }),
      "GET /providers": () => ({ body: { providers: [{ name: "sandbox", display_name: "Sandbox CRM", auth: "oauth2", objects: [] }] } }),
      "GET /connection-summaries": (c) =>
        c.query.get("status") === "disabled"
          ? { body: { connections: [], next_cursor: null } }
          : c.query.get("cursor")
            ? { body: { connections: [{ id: "c-2", tenant: "t", provider: "sandbox", status: "active", base_url: null, webhook_scheme: null, settings: {}, created_at: "2026-12-07T10:00:00Z" }], next_cursor: null } }
            : { body: { connections: [{ id: "c-1", tenant: "t", provider: "sandbox", status: "needs_reauth", base_url: null, webhook_scheme: null, settings: {}, created_at: "2026-12-07T10:00:00Z", last_sync_at: null, next_sync_at: null, last_status: "failed", last_error: "HTTP 401 from the provider" }], next_cursor: "CUR" } },
    });
    render(<App />);
    expect(await screen.findByRole("link", { name: "c-1" })).toBeTruthy();
    expect(screen.getByText(/HTTP 401 from the provider/)).toBeInTheDocument();
    fireEvent.click(screen.getByRole("button", { name: "Next" }));
    expect(await screen.findByRole("link", { name: "c-2" })).toBeTruthy();
    expect(calls.some((c) => c.path === "/connection-summaries" && c.query.get("cursor") === "CUR")).toBe(true);
    fireEvent.change(screen.getByLabelText("Status"), { target: { value: "disabled" } });
    expect(await screen.findByText("No connection matches these filters.")).toBeTruthy();
  });

  it("API keys: a new key is shown once; revoking asks first", async () => {
    window.history.replaceState(null, "", "/api/v1/admin/api-keys");
    let keys = [{ id: "key_1", name: "ci", scope: "read", created_at: "2026-12-07T10:00:00Z", revoked_at: null as string | null }];
    const { calls } = fakeApi({
      "GET /session": () => ({ body: SESSION }),
      "GET /api-keys": () => ({ body: { keys } }),
      "POST /api-keys": () => {
        keys = [...keys, { id: "key_2", name: "etl", scope: "write", created_at: "2026-12-07T11:00:00Z", revoked_at: null }];
        return { status: 201, body: { ...keys[1], key: "sbk_shown_once" } };
      },
      "DELETE /api-keys/key_1": () => {
        keys = keys.map((k) => (k.id === "key_1" ? { ...k, revoked_at: "2026-12-07T12:00:00Z" } : k));
        return { status: 204 };
      },
    });
    render(<App />);
    fireEvent.change(await screen.findByLabelText("Name"), { target: { value: "etl" } });
    fireEvent.change(screen.getByLabelText("Scope"), { target: { value: "write" } });
    fireEvent.click(screen.getByRole("button", { name: "Create key" }));
    expect(await screen.findByText("sbk_shown_once")).toBeTruthy();
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({ name: "etl", scope: "write" });
    fireEvent.click(await screen.findByRole("button", { name: "Revoke ci" }));
    const group = screen.getByRole("group", { name: "Confirm: Revoke ci" });
    fireEvent.click(within(group).getByRole("button", { name: "Yes, revoke ci" }));
    await waitFor(() => expect(screen.queryByRole("button", { name: "Revoke ci" })).toBeNull());
    expect(calls.some((c) => c.method === "DELETE" && c.path === "/api-keys/key_1")).toBe(true);
  });

  it("quarantine: inspect and replay an entry; an API error is shown in place", async () => {
    window.history.replaceState(null, "", "/api/v1/admin/quarantine");
    let replays = 0;
    fakeApi({
      "GET /session": () => ({ body: SESSION }),
      "GET /quarantine": () => ({ body: { entries: replays ? [] : [{ id: 7, source: "webhook", reason: "undecodable", connection_id: "acme-crm", message_id: null, at: "2026-12-07T10:00:00Z", bytes: 12 }], next_cursor: null } }),
      "GET /quarantine/7": () => ({ body: { id: 7, source: "webhook", reason: "undecodable", connection_id: "acme-crm", message_id: null, at: "2026-12-07T10:00:00Z", bytes: 12, body_text: "{\"id\":\"42\"}", body_base64: "" } }),
      "POST /quarantine/7/replay": () => {
        replays += 1;
        return replays === 1 ? problem(503, "Temporarily unavailable", "queue busy") : { body: { id: 7, outcome: "resent", queue: "sync-inbound", jobs: null } };
      },
    });
    render(<App />);
    fireEvent.click(await screen.findByRole("button", { name: "Inspect 7" }));
    expect(await screen.findByText('{"id":"42"}')).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Replay" }));
    expect(await screen.findByText("queue busy")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Replay" }));
    expect(await screen.findByText("Entry 7 replayed: resent to sync-inbound.")).toBeTruthy();
    expect(await screen.findByText("Nothing is quarantined.")).toBeTruthy();
  });
});

describe("overview charts", () => {
  it("turns hourly stats into bars and totals (mean duration weighted by runs)", () => {
    const h = (start: string, runs: number, failed: number, records: number, ms: number | null) => ({ start, runs, failed, records, mean_duration_ms: ms });
    const r = hourly({
      hours: [h("2026-12-07T10:00:00Z", 1, 0, 5, 1000), h("2026-12-07T11:00:00Z", 0, 0, 0, null), h("2026-12-07T12:00:00Z", 3, 1, 12, 3000)],
      truncated: false,
    });
    expect(r.records.map((b) => b.value)).toEqual([5, 0, 12]);
    expect(r.durations.map((b) => b.value)).toEqual([1000, 0, 3000]);
    expect(r.runs).toBe(4);
    expect(r.failed).toBe(1);
    expect(r.meanMs).toBe(2500);
  });
});
