import { describe, expect, it } from "vitest";
import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { App } from "../App";
import { fakeApi, problem, SESSION } from "./fake";
import { hourly } from "../pages/Overview";
import type { RunView } from "../api";

const HEALTH = {
  status: "ok",
  store_reachable: true,
  store_error: null,
  queues: [{ name: "sync-inbound", active: 2, scheduled: 0, locked: 1, dead_lettered: 3 }],
  queues_note: null,
  overdue_tasks: { count: 0, ids: [], more: false },
  needs_reauth: { count: 1, ids: ["acme-crm"], more: false },
  not_reported: [],
};

function run(id: string, started: string, ms: number, created: number): RunView {
  return {
    id,
    task_id: "t",
    connection_id: "acme-crm",
    object: "contacts",
    status: "succeeded",
    state: "succeeded",
    started_at: started,
    finished_at: new Date(new Date(started).getTime() + ms).toISOString(),
    counts: { pages: 1, fetched: created, created, updated: 0, unchanged: 0, deleted: 0, requests: 1, throttled: 0 },
    error: null,
  };
}

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
      "GET /runs": () => ({ body: { runs: [], next_cursor: null } }),
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
      "GET /runs": () => ({ body: { runs: [], next_cursor: null } }),
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
      "GET /connections": (c) =>
        c.query.get("status") === "disabled"
          ? { body: { connections: [], next_cursor: null } }
          : c.query.get("cursor")
            ? { body: { connections: [{ id: "c-2", tenant: "t", provider: "sandbox", status: "active", base_url: null, webhook_scheme: null, settings: {}, created_at: "2026-12-07T10:00:00Z" }], next_cursor: null } }
            : { body: { connections: [{ id: "c-1", tenant: "t", provider: "sandbox", status: "needs_reauth", base_url: null, webhook_scheme: null, settings: {}, created_at: "2026-12-07T10:00:00Z" }], next_cursor: "CUR" } },
    });
    render(<App />);
    expect(await screen.findByRole("link", { name: "c-1" })).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Next" }));
    expect(await screen.findByRole("link", { name: "c-2" })).toBeTruthy();
    expect(calls.some((c) => c.path === "/connections" && c.query.get("cursor") === "CUR")).toBe(true);
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
        return replays === 1 ? problem(503, "Temporarily unavailable", "queue busy") : { body: { id: 7, outcome: "replayed", queue: "sync-inbound", jobs: 1 } };
      },
    });
    render(<App />);
    fireEvent.click(await screen.findByRole("button", { name: "Inspect 7" }));
    expect(await screen.findByText('{"id":"42"}')).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Replay" }));
    expect(await screen.findByText("queue busy")).toBeTruthy();
    fireEvent.click(screen.getByRole("button", { name: "Replay" }));
    expect(await screen.findByText("Entry 7 replayed: replayed.")).toBeTruthy();
    expect(await screen.findByText("Nothing is quarantined.")).toBeTruthy();
  });
});

describe("overview charts", () => {
  it("buckets the last 24 hours by hour: records synced and mean duration", () => {
    const now = Date.parse("2026-12-07T12:30:00Z");
    const { records, durations } = hourly(
      [
        run("r1", "2026-12-07T12:05:00Z", 1000, 5),
        run("r2", "2026-12-07T12:10:00Z", 3000, 7),
        run("r3", "2026-12-07T10:00:00Z", 500, 1),
        run("old", "2026-12-05T10:00:00Z", 500, 100),
      ],
      now,
    );
    expect(records).toHaveLength(24);
    expect(records[23].value).toBe(12);
    expect(durations[23].value).toBe(2000);
    expect(records[21].value).toBe(1);
    expect(records.reduce((s, b) => s + b.value, 0)).toBe(13);
  });
});
