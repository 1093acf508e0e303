import { afterEach, describe, expect, it } from "vitest";
import { fireEvent, render, screen, waitFor, within } from "@testing-library/react";
import { setCsrf } from "../api";
import { ConflictPolicies, toDocument, toDraft } from "../pages/ConflictPolicies";
import { fakeApi, problem, SESSION } from "./fake";

const CONN = {
  id: "c1",
  tenant: "acme",
  provider: "sandbox",
  status: "active",
  base_url: null,
  webhook_scheme: null,
  settings: {},
  created_at: "2026-12-07T10:00:00Z",
};

const task = (object: string) => ({ id: `c1:${object}:inbound`, object, direction: "inbound", interval_secs: 60, leased: false, stalled: false });

const PROVIDER = {
  name: "sandbox",
  display_name: "Sandbox",
  auth: "oauth2",
  objects: [
    { name: "contacts", fields: ["email", "phone"], incremental: true, deletes: "none", push: null },
    { name: "companies", fields: ["domain", "name"], incremental: true, deletes: "none", push: null },
  ],
};

/** A fake API holding one connection at version `"v<n>"` with `conflicts`; PATCH honours If-Match. */
function backend(conflicts: object, patch?: (body: unknown) => { status?: number; body?: unknown } | undefined) {
  let version = 1;
  let current = conflicts;
  const fake = fakeApi({
    "GET /connections/c1": () => ({ body: { ...CONN, conflicts: current }, headers: { ETag: `"v${version}"` } }),
    "GET /connections/c1/tasks": () => ({ body: { tasks: [task("contacts"), task("companies")], next_cursor: null } }),
    "GET /providers/sandbox": () => ({ body: PROVIDER }),
    "PATCH /connections/c1": (c) => {
      const refused = patch?.(c.body);
      if (refused) return refused;
      if (c.headers["If-Match"] && c.headers["If-Match"] !== `"v${version}"`) return problem(412, "Precondition failed", `connection c1 is at version "v${version}"`);
      current = (c.body as { conflicts: object }).conflicts;
      version += 1;
      return { body: { ...CONN, conflicts: current }, headers: { ETag: `"v${version}"` } };
    },
  });
  return {
    ...fake,
    /** Another writer: a new version with these policies. */
    changeElsewhere: (c: object) => {
      current = c;
      version += 1;
    },
    stored: () => current,
  };
}

afterEach(() => setCsrf(null));

describe("conflict policies", () => {
  it("shows the stored policies per level for the connection's objects", async () => {
    backend({ policy: "latest", objects: { contacts: { policy: "source_wins", fields: { phone: "target_wins" } } } });
    render(<ConflictPolicies id="c1" />);
    expect(screen.getByText("Loading conflict policies…")).toBeInTheDocument();
    expect(await screen.findByLabelText("Connection-wide policy")).toHaveValue("latest");
    expect(screen.getByLabelText("Object-wide policy for contacts")).toHaveValue("source_wins");
    expect(screen.getByLabelText("Object-wide policy for companies")).toHaveValue("");
    expect(screen.getByLabelText("Field of contacts override 1")).toHaveValue("phone");
    expect(screen.getByLabelText("Policy for contacts.phone")).toHaveValue("target_wins");
    // The field list offers only the object's mapped fields.
    const options = within(screen.getByLabelText("Field of contacts override 1")).getAllByRole("option");
    expect(options.map((o) => o.textContent)).toEqual(["Choose a field", "email", "phone"]);
  });

  it("edits every level and saves the whole document under If-Match with the CSRF token", async () => {
    setCsrf(SESSION.csrf_token);
    const { calls } = backend({ policy: "latest", objects: { contacts: { fields: { phone: "target_wins" } } } });
    render(<ConflictPolicies id="c1" />);
    fireEvent.change(await screen.findByLabelText("Connection-wide policy"), { target: { value: "" } });
    fireEvent.change(screen.getByLabelText("Object-wide policy for contacts"), { target: { value: "source_wins" } });
    fireEvent.click(screen.getByRole("button", { name: "Remove contacts.phone" }));
    fireEvent.click(screen.getByRole("button", { name: "Add field override to companies" }));
    fireEvent.change(screen.getByLabelText("Field of companies override 1"), { target: { value: "domain" } });
    fireEvent.change(screen.getByLabelText("Policy for companies.domain"), { target: { value: "target_wins" } });
    fireEvent.click(screen.getByRole("button", { name: "Save policies" }));
    expect(await screen.findByText(/Saved: the next push/)).toBeInTheDocument();
    const sent = calls.find((c) => c.method === "PATCH")!;
    expect(sent.body).toEqual({ conflicts: { objects: { contacts: { policy: "source_wins" }, companies: { fields: { domain: "target_wins" } } } } });
    expect(sent.headers["If-Match"]).toBe('"v1"');
    expect(sent.headers["X-CSRF-Token"]).toBe(SESSION.csrf_token);
    // The form shows the saved version, and the next save goes under it.
    await waitFor(() => expect(screen.queryByRole("button", { name: "Remove contacts.phone" })).toBeNull());
    expect(screen.getByLabelText("Policy for companies.domain")).toHaveValue("target_wins");
    fireEvent.click(screen.getByRole("button", { name: "Save policies" }));
    await waitFor(() => expect(calls.filter((c) => c.method === "PATCH")).toHaveLength(2));
    expect(calls.filter((c) => c.method === "PATCH")[1].headers["If-Match"]).toBe('"v2"');
  });

  it("policies changed elsewhere (412) are shown with a reload; nothing is overwritten", async () => {
    const b = backend({});
    render(<ConflictPolicies id="c1" />);
    fireEvent.change(await screen.findByLabelText("Connection-wide policy"), { target: { value: "target_wins" } });
    b.changeElsewhere({ policy: "latest" });
    fireEvent.click(screen.getByRole("button", { name: "Save policies" }));
    expect(await screen.findByText("Changed elsewhere")).toBeInTheDocument();
    expect(screen.queryByText(/Saved/)).toBeNull();
    expect(b.stored()).toEqual({ policy: "latest" });
    fireEvent.click(screen.getByRole("button", { name: "Reload policies" }));
    await waitFor(() => expect(screen.queryByText("Changed elsewhere")).toBeNull());
    expect(screen.getByLabelText("Connection-wide policy")).toHaveValue("latest");
  });

  it("another field changed meanwhile (policies as loaded): saved under the new version", async () => {
    const b = backend({ policy: "latest" });
    const { calls } = b;
    render(<ConflictPolicies id="c1" />);
    fireEvent.change(await screen.findByLabelText("Connection-wide policy"), { target: { value: "source_wins" } });
    b.changeElsewhere({ policy: "latest" });
    fireEvent.click(screen.getByRole("button", { name: "Save policies" }));
    expect(await screen.findByText(/Saved: the next push/)).toBeInTheDocument();
    expect(calls.filter((c) => c.method === "PATCH").map((c) => c.headers["If-Match"])).toEqual(['"v1"', '"v2"']);
    expect(b.stored()).toEqual({ policy: "source_wins" });
  });

  it("shows the API's refusal (422) and a row without a field before anything is sent", async () => {
    const { calls } = backend({}, () => problem(422, "Invalid conflict policies", 'conflicts.objects.contacts.fields: contacts maps no field "x"'));
    render(<ConflictPolicies id="c1" />);
    fireEvent.click(await screen.findByRole("button", { name: "Add field override to contacts" }));
    fireEvent.click(screen.getByRole("button", { name: "Save policies" }));
    expect(await screen.findByText(/Choose a field for each override/)).toBeInTheDocument();
    expect(calls.some((c) => c.method === "PATCH")).toBe(false);
    fireEvent.change(screen.getByLabelText("Field of contacts override 1"), { target: { value: "email" } });
    fireEvent.click(screen.getByRole("button", { name: "Save policies" }));
    expect(await screen.findByText(/maps no field "x"/)).toBeInTheDocument();
    expect(screen.getByRole("alert")).toHaveTextContent("Invalid conflict policies");
  });

  it("a failed load is an error with a retry", async () => {
    fakeApi({
      "GET /connections/c1": () => problem(503, "Temporarily unavailable", "the store is unavailable"),
      "GET /connections/c1/tasks": () => ({ body: { tasks: [], next_cursor: null } }),
    });
    render(<ConflictPolicies id="c1" />);
    expect(await screen.findByText("the store is unavailable")).toBeInTheDocument();
    expect(screen.getByRole("button", { name: "Try again" })).toBeInTheDocument();
  });

  it("drafts and documents round-trip; unset levels are left out", () => {
    const doc = { policy: "manual" as const, objects: { contacts: { policy: "latest" as const, fields: { email: "source_wins" as const } } } };
    expect(toDocument(toDraft(doc, ["contacts", "deals"]))).toEqual(doc);
    expect(toDocument(toDraft(undefined, ["contacts"]))).toEqual({});
    expect(toDraft({ objects: { gone: { policy: "latest" } } }, ["contacts"]).objects.map((o) => o.name)).toEqual(["contacts", "gone"]);
  });
});
