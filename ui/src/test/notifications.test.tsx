import { describe, expect, it } from "vitest";
import { fireEvent, render, screen, within } from "@testing-library/react";
import { Notifications } from "../pages/Notifications";
import { fakeApi, problem } from "./fake";

describe("notifications", () => {
  it("lists channels and rules and sends a test, showing the channel's answer", async () => {
    const { calls } = fakeApi({
      "GET /notifications": () => ({
        body: {
          configured: true,
          channels: [{ name: "ops-slack", kind: "slack" }],
          rules: [{ tenant: "acme", kinds: ["sync_run_failed"], min_severity: "warning", channels: ["ops-slack"] }],
          default_route: null,
          rules_source: "file",
          rules_version: 0,
          event_kinds: ["sync_run_failed", "task_stalled"],
          outbox: { pending: 1, delivered: 5, dead: 2 },
        },
      }),
      "POST /notifications/test": () => ({ body: { delivered: false, answer: "slack answered HTTP 404: no_service" } }),
    });
    render(<Notifications />);
    expect(await screen.findByRole("group", { name: "Rule 1" })).toBeInTheDocument();
    expect((screen.getByRole("option", { name: "sync_run_failed" }) as HTMLOptionElement).selected).toBe(true);
    expect(screen.getByText("2 dead")).toBeInTheDocument();
    fireEvent.click(screen.getByRole("button", { name: "Send a test to ops-slack" }));
    expect(await screen.findByText(/not delivered — slack answered HTTP 404/)).toBeInTheDocument();
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({ channel: "ops-slack" });
  });

  it("says when nothing is configured", async () => {
    fakeApi({ "GET /notifications": () => ({ body: { configured: false, channels: [], rules: [], default_route: null, rules_source: "file", rules_version: 0, event_kinds: [], outbox: null } }) });
    render(<Notifications />);
    expect(await screen.findByText("No notification service is configured.")).toBeInTheDocument();
  });

  const view = (over: Record<string, unknown> = {}) => ({
    configured: true,
    channels: [
      { name: "ops-slack", kind: "slack" },
      { name: "oncall", kind: "teams" },
      { name: "product-webhook", kind: "product" },
    ],
    rules: [
      { tenant: "acme", kinds: ["sync_run_failed"], min_severity: "warning", channels: ["ops-slack"] },
      { tenant: null, kinds: [], min_severity: "critical", channels: ["oncall"] },
    ],
    default_route: null,
    rules_source: "file",
    rules_version: 0,
    event_kinds: ["sync_run_failed", "task_stalled", "conflict_parked"],
    outbox: null,
    ...over,
  });

  it("edits rules — add, reorder, remove, pick channels and kinds — and saves the whole list under If-Match", async () => {
    let saved: unknown = null;
    const { calls } = fakeApi({
      "GET /notifications": () => ({ body: saved ? view({ ...(saved as object), rules_source: "store", rules_version: 1 }) : view() }),
      "PUT /notifications/rules": (c) => {
        saved = c.body;
        return { body: view({ ...(c.body as object), rules_source: "store", rules_version: 1 }) };
      },
    });
    render(<Notifications />);
    const rule1 = await screen.findByRole("group", { name: "Rule 1" });
    // Product channels are not routed by rules: not offered.
    expect(within(rule1).queryByRole("checkbox", { name: "product-webhook" })).toBeNull();
    fireEvent.click(screen.getByRole("button", { name: "Add rule" }));
    const rule3 = screen.getByRole("group", { name: "Rule 3" });
    fireEvent.change(within(rule3).getByRole("textbox", { name: "Tenant" }), { target: { value: "globex" } });
    fireEvent.change(within(rule3).getByRole("combobox", { name: "Minimum severity" }), { target: { value: "info" } });
    const kinds = within(rule3).getByRole("listbox") as HTMLSelectElement;
    (within(kinds).getByRole("option", { name: "task_stalled" }) as HTMLOptionElement).selected = true;
    (within(kinds).getByRole("option", { name: "conflict_parked" }) as HTMLOptionElement).selected = true;
    fireEvent.change(kinds);
    expect(within(rule3).getByText("Kinds: task_stalled, conflict_parked")).toBeInTheDocument();
    fireEvent.click(within(rule3).getByRole("checkbox", { name: "oncall" }));
    // Rule 3 moves to the top; the old rule 2 (now 3) is removed.
    fireEvent.click(screen.getByRole("button", { name: "Move rule 3 up" }));
    fireEvent.click(screen.getByRole("button", { name: "Move rule 2 up" }));
    fireEvent.click(screen.getByRole("button", { name: "Remove rule 3" }));
    fireEvent.click(screen.getByRole("checkbox", { name: "Send events no rule matches" }));
    fireEvent.change(screen.getByRole("combobox", { name: "Default minimum severity" }), { target: { value: "critical" } });
    fireEvent.click(screen.getByRole("button", { name: "Save rules" }));
    expect(await screen.findByText("Rules saved (version 1).")).toBeInTheDocument();
    const put = calls.find((c) => c.method === "PUT");
    expect(put?.headers["If-Match"]).toBe('"0"');
    expect(put?.body).toEqual({
      rules: [
        { tenant: "globex", kinds: ["task_stalled", "conflict_parked"], min_severity: "info", channels: ["ops-slack", "oncall"] },
        { tenant: "acme", kinds: ["sync_run_failed"], min_severity: "warning", channels: ["ops-slack"] },
      ],
      default_route: { tenant: null, kinds: [], min_severity: "critical", channels: ["ops-slack"] },
    });
    expect(await screen.findByText(/Saved here \(version 1\)/)).toBeInTheDocument();
  });

  it("shows a refused save's problem and keeps the edits", async () => {
    fakeApi({
      "GET /notifications": () => ({ body: view() }),
      "PUT /notifications/rules": () => problem(422, "Invalid notification rules", 'rule 1 lists no channel'),
    });
    render(<Notifications />);
    const rule1 = await screen.findByRole("group", { name: "Rule 1" });
    fireEvent.click(within(rule1).getByRole("checkbox", { name: "ops-slack" }));
    fireEvent.click(screen.getByRole("button", { name: "Save rules" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("rule 1 lists no channel");
    expect(within(rule1).getByRole("checkbox", { name: "ops-slack" })).not.toBeChecked();
    expect(screen.queryByText(/Rules saved/)).toBeNull();
  });

  it("sends the stored version as If-Match, so a stale page gets 412", async () => {
    const { calls } = fakeApi({
      "GET /notifications": () => ({ body: view({ rules_source: "store", rules_version: 4 }) }),
      "PUT /notifications/rules": () => problem(412, "Precondition failed", "the notification rules are at version \"5\""),
    });
    render(<Notifications />);
    fireEvent.click(await screen.findByRole("button", { name: "Remove rule 2" }));
    fireEvent.click(screen.getByRole("button", { name: "Save rules" }));
    expect(await screen.findByRole("alert")).toHaveTextContent("Precondition failed");
    expect(calls.find((c) => c.method === "PUT")?.headers["If-Match"]).toBe('"4"');
  });
});
