import { describe, expect, it } from "vitest";
import { fireEvent, render, screen } from "@testing-library/react";
import { Notifications } from "../pages/Notifications";
import { fakeApi } from "./fake";

describe("notifications", () => {
  it("lists channels and rules and sends a test, showing the channel's answer", async () => {
    const { calls } = fakeApi({
      "GET /notifications": () => ({
        body: {
          configured: true,
          channels: [{ name: "ops-slack", kind: "slack" }],
          rules: [{ tenant: "acme", kinds: ["sync_run_failed"], min_severity: "warning", channels: ["ops-slack"] }],
          default_route: null,
          outbox: { pending: 1, delivered: 5, dead: 2 },
        },
      }),
      "POST /notifications/test": () => ({ body: { delivered: false, answer: "slack answered HTTP 404: no_service" } }),
    });
    render(<Notifications />);
    expect(await screen.findByText("sync_run_failed")).toBeInTheDocument();
    expect(screen.getByText("2 dead")).toBeInTheDocument();
    fireEvent.click(screen.getByRole("button", { name: "Send a test to ops-slack" }));
    expect(await screen.findByText(/not delivered — slack answered HTTP 404/)).toBeInTheDocument();
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({ channel: "ops-slack" });
  });

  it("says when nothing is configured", async () => {
    fakeApi({ "GET /notifications": () => ({ body: { configured: false, channels: [], rules: [], default_route: null, outbox: null } }) });
    render(<Notifications />);
    expect(await screen.findByText("No notification service is configured.")).toBeInTheDocument();
  });
});
