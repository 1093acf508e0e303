import { describe, expect, it, vi } from "vitest";
import { fireEvent, render, screen, waitFor } from "@testing-library/react";
import { App } from "../App";
import { browser } from "../api";
import { fakeApi, problem, SESSION } from "./fake";

const PROVIDERS = { providers: [{ name: "sandbox", display_name: "Sandbox CRM", auth: "oauth2", objects: [] }] };
const CONNECT = { id: "cs_1", connect_url: "http://127.0.0.1:9/api/v1/connect/s/tok", expires_at: "2026-12-07T23:00:00Z", connection_id: "conn-new" };

describe("connect flow", () => {
  it("Add connection: a session returning to this page, then the browser goes to its link", async () => {
    window.history.replaceState(null, "", "/api/v1/admin/add-connection");
    const go = vi.spyOn(browser, "go").mockImplementation(() => {});
    const { calls } = fakeApi({
      "GET /session": () => ({ body: SESSION }),
      "GET /providers": () => ({ body: PROVIDERS }),
      "POST /connect/sessions": () => ({ status: 201, body: CONNECT }),
    });
    render(<App />);
    fireEvent.click(await screen.findByRole("button", { name: /Sandbox CRM/ }));
    fireEvent.click(screen.getByRole("button", { name: "Connect through Sandbox CRM" }));
    expect(await screen.findByText("A tenant is needed to connect.")).toBeInTheDocument();
    expect(calls.some((c) => c.method === "POST")).toBe(false);
    fireEvent.change(screen.getByLabelText("Tenant"), { target: { value: " acme " } });
    fireEvent.change(screen.getByLabelText("Base URL (optional)"), { target: { value: "http://127.0.0.1:5/" } });
    fireEvent.click(screen.getByRole("button", { name: "Connect through Sandbox CRM" }));
    await waitFor(() => expect(go).toHaveBeenCalledWith(CONNECT.connect_url));
    const post = calls.find((c) => c.method === "POST" && c.path === "/connect/sessions");
    expect(post?.body).toEqual({
      tenant: "acme",
      provider: "sandbox",
      base_url: "http://127.0.0.1:5/",
      return_url: `${window.location.origin}/api/v1/admin/add-connection`,
    });
    expect(post?.headers["X-CSRF-Token"]).toBe(SESSION.csrf_token);
    go.mockRestore();
  });

  it("Add connection: a provider's settings are asked for and sent with the session", async () => {
    window.history.replaceState(null, "", "/api/v1/admin/add-connection");
    const go = vi.spyOn(browser, "go").mockImplementation(() => {});
    const github = {
      name: "github",
      display_name: "GitHub Issues",
      auth: "oauth2",
      objects: [],
      settings: [
        { name: "owner", label: "Repository owner", description: "The user or organization.", example: "octocat", default: null },
        { name: "repo", label: "Repository", description: null, example: "hello-world", default: null },
      ],
    };
    const { calls } = fakeApi({
      "GET /session": () => ({ body: SESSION }),
      "GET /providers": () => ({ body: { providers: [github] } }),
      "POST /connect/sessions": () => ({ status: 201, body: CONNECT }),
    });
    render(<App />);
    fireEvent.click(await screen.findByRole("button", { name: /GitHub Issues/ }));
    const owner = screen.getByLabelText("Repository owner");
    expect(owner).toBeRequired();
    expect(owner).toHaveAccessibleDescription("The user or organization.");
    fireEvent.change(screen.getByLabelText("Tenant"), { target: { value: "acme" } });
    fireEvent.change(owner, { target: { value: " octo " } });
    fireEvent.change(screen.getByLabelText("Repository"), { target: { value: "hello" } });
    fireEvent.click(screen.getByRole("button", { name: "Connect through GitHub Issues" }));
    await waitFor(() => expect(go).toHaveBeenCalledWith(CONNECT.connect_url));
    const post = calls.find((c) => c.method === "POST" && c.path === "/connect/sessions");
    expect(post?.body).toMatchObject({ provider: "github", settings: { owner: "octo", repo: "hello" } });
    go.mockRestore();
  });

  it("Add connection: a refused session is shown and the browser stays", async () => {
    window.history.replaceState(null, "", "/api/v1/admin/add-connection");
    const go = vi.spyOn(browser, "go").mockImplementation(() => {});
    fakeApi({
      "GET /session": () => ({ body: SESSION }),
      "GET /providers": () => ({ body: PROVIDERS }),
      "POST /connect/sessions": () => problem(400, "Invalid request", "return_url: not allowed here"),
    });
    render(<App />);
    fireEvent.click(await screen.findByRole("button", { name: /Sandbox CRM/ }));
    fireEvent.change(screen.getByLabelText("Tenant"), { target: { value: "acme" } });
    fireEvent.click(screen.getByRole("button", { name: "Connect through Sandbox CRM" }));
    expect(await screen.findByText("return_url: not allowed here")).toBeInTheDocument();
    expect(go).not.toHaveBeenCalled();
    go.mockRestore();
  });

  it("back from the provider: approved opens the new connection, denied shows why", async () => {
    window.history.replaceState(null, "", "/api/v1/admin/add-connection?connection_id=conn-new");
    fakeApi({ "GET /session": () => ({ body: SESSION }), "GET /providers": () => ({ body: PROVIDERS }) });
    const { unmount } = render(<App />);
    await waitFor(() => expect(window.location.pathname).toBe("/api/v1/admin/connections/conn-new"));
    unmount();

    window.history.replaceState(null, "", "/api/v1/admin/add-connection?error=access_denied");
    fakeApi({ "GET /session": () => ({ body: SESSION }), "GET /providers": () => ({ body: PROVIDERS }) });
    render(<App />);
    expect(await screen.findByText(/did not authorize the connection \(access_denied\); nothing was stored/)).toBeInTheDocument();
    expect(window.location.pathname).toBe("/api/v1/admin/add-connection");
  });

  it("Reconnect: only on a connection needing re-authorization; a session for that connection", async () => {
    window.history.replaceState(null, "", "/api/v1/admin/connections/c-1");
    const go = vi.spyOn(browser, "go").mockImplementation(() => {});
    let status = "active";
    const { calls } = fakeApi({
      "GET /session": () => ({ body: SESSION }),
      "GET /connections/c-1": () => ({
        body: { id: "c-1", tenant: "t", provider: "sandbox", status, base_url: "http://127.0.0.1:5", webhook_scheme: null, settings: {}, created_at: "2026-12-07T10:00:00Z" },
      }),
      "POST /connect/sessions": () => ({ status: 201, body: { ...CONNECT, connection_id: "c-1" } }),
    });
    const { unmount } = render(<App />);
    await screen.findByRole("button", { name: "Sync now" });
    expect(screen.queryByRole("button", { name: "Reconnect" })).toBeNull();
    unmount();
    status = "needs_reauth";
    render(<App />);
    fireEvent.click(await screen.findByRole("button", { name: "Reconnect" }));
    await waitFor(() => expect(go).toHaveBeenCalledWith(CONNECT.connect_url));
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({
      tenant: "t",
      provider: "sandbox",
      connection_id: "c-1",
      base_url: "http://127.0.0.1:5",
      return_url: `${window.location.origin}/api/v1/admin/connections/c-1`,
    });
    go.mockRestore();
  });
});
