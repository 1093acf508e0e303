import { describe, expect, it } from "vitest";
import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { Webhook } from "../pages/Webhook";
import { fakeApi } from "./fake";

describe("webhook settings", () => {
  it("sets up, rotates (the new secret shown once), ends the rotation", async () => {
    let state = { configured: false, scheme: null as string | null, active_secrets: 0, url_path: "/api/webhooks/c1" };
    const { calls } = fakeApi({
      "GET /connections/c1/webhook": () => ({ body: state }),
      "PUT /connections/c1/webhook": (c) => {
        state = { ...state, configured: true, scheme: (c.body as { scheme: string }).scheme, active_secrets: 1 };
        return { body: { ...state, secret: "whsec_first" } };
      },
      "POST /connections/c1/webhook/rotate": () => {
        state = { ...state, active_secrets: 2 };
        return { body: { ...state, secret: "whsec_second" } };
      },
      "DELETE /connections/c1/webhook/previous": () => {
        state = { ...state, active_secrets: 1 };
        return { body: state };
      },
    });
    render(<Webhook id="c1" />);
    fireEvent.change(await screen.findByLabelText("Signature scheme"), { target: { value: "github" } });
    fireEvent.click(screen.getByRole("button", { name: "Set up webhooks" }));
    expect(await screen.findByText("whsec_first")).toBeInTheDocument();
    expect(calls.find((c) => c.method === "PUT")?.body).toEqual({ scheme: "github" });
    fireEvent.click(await screen.findByRole("button", { name: "Rotate secret" }));
    expect(await screen.findByText("whsec_second")).toBeInTheDocument();
    expect(screen.queryByText("whsec_first")).toBeNull();
    expect(await screen.findByText(/rotation in progress/)).toBeInTheDocument();
    fireEvent.click(screen.getByRole("button", { name: "End rotation" }));
    await waitFor(() => expect(screen.queryByRole("button", { name: "End rotation" })).toBeNull());
    expect(screen.queryByText("whsec_second")).toBeNull();
  });
});
