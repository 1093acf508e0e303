import { describe, expect, it } from "vitest";
import { fireEvent, render, screen, within } from "@testing-library/react";
import { Conflicts } from "../pages/Conflicts";
import { fakeApi } from "./fake";

const CONFLICT = {
  connection_id: "acme-crm",
  object: "contacts",
  record_id: "42",
  version: 3,
  fields: [
    { field: "email", base: "a@x.io", ours: "b@x.io", theirs: "c@x.io", parked_at: "2026-12-07T10:00:00Z" },
    { field: "phone", base: "1", ours: "2", theirs: "3", parked_at: "2026-12-07T10:00:00Z" },
  ],
};

describe("conflicts", () => {
  it("shows base, ours and theirs per field; take theirs, then the audit trail", async () => {
    let parked = true;
    const { calls } = fakeApi({
      "GET /conflicts": () => ({ body: { conflicts: parked ? [CONFLICT] : [], next_cursor: null } }),
      "POST /connections/acme-crm/objects/contacts/records/42/resolve": () => {
        parked = false;
        return { status: 202, body: { state: "pending" } };
      },
      "GET /connections/acme-crm/audit": () => ({
        body: { entries: [{ key: "k1", object: "contacts", record_id: "42", at: "2026-12-07T11:00:00Z", entry: { outcome: "resolved_by_person", field: "email" } }], next_cursor: null },
      }),
    });
    render(<Conflicts />);
    const table = await screen.findByRole("region", { name: "Parked fields of acme-crm contacts 42" });
    const email = within(table).getByRole("row", { name: /email/ });
    expect(within(email).getByText('"a@x.io"')).toBeInTheDocument();
    expect(within(email).getByText('"b@x.io"')).toBeInTheDocument();
    expect(within(email).getByText('"c@x.io"')).toBeInTheDocument();
    fireEvent.click(screen.getByRole("button", { name: "Take theirs" }));
    expect(await screen.findByText(/took theirs; the record is pushed/)).toBeInTheDocument();
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({ take: "theirs" });
    expect(await screen.findByText("No parked conflicts.")).toBeInTheDocument();
    expect(await screen.findByText(/resolved_by_person/)).toBeInTheDocument();
  });

  it("sends typed values per field (JSON when it parses, else text)", async () => {
    const { calls } = fakeApi({
      "GET /conflicts": () => ({ body: { conflicts: [CONFLICT], next_cursor: null } }),
      "POST /connections/acme-crm/objects/contacts/records/42/resolve": () => ({ status: 409, body: { type: "urn:syncbridge:problem:conflict", title: "Conflict", status: 409, detail: "the record changed; reload" } }),
    });
    render(<Conflicts />);
    fireEvent.change(await screen.findByLabelText("Value for email"), { target: { value: "d@x.io" } });
    fireEvent.change(screen.getByLabelText("Value for phone"), { target: { value: "5" } });
    fireEvent.click(screen.getByRole("button", { name: "Save typed values" }));
    expect(await screen.findByText("the record changed; reload")).toBeInTheDocument();
    expect(calls.find((c) => c.method === "POST")?.body).toEqual({ value: { email: "d@x.io", phone: 5 } });
  });
});
