import { useState, type FormEvent } from "react";
import { api } from "../api";
import { Link, useLoc } from "../router";
import { Empty, Pager, Show, StatusBadge, TableWrap, useAsync, usePages, when } from "../ui";

const STATUSES = ["", "active", "needs_reauth", "disabled"];

/** Connections, paged on the server (keyset cursors), filtered by status, provider and tenant. */
export function Connections() {
  const { search, go } = useLoc();
  const status = search.get("status") ?? "";
  const provider = search.get("provider") ?? "";
  const tenant = search.get("tenant") ?? "";
  const pages = usePages();
  const [jump, setJump] = useState("");
  const page = useAsync(() => api.summaries({ status, provider, tenant, cursor: pages.cursor, limit: 50 }), [status, provider, tenant, pages.cursor]);
  const providers = useAsync(() => api.providers(), []);
  const filter = (k: string, v: string) => {
    const q = new URLSearchParams(search);
    if (v) q.set(k, v);
    else q.delete(k);
    pages.reset();
    const s = q.toString();
    go(`connections${s ? `?${s}` : ""}`, true);
  };
  const submitJump = (e: FormEvent) => {
    e.preventDefault();
    if (jump.trim()) go(`connections/${encodeURIComponent(jump.trim())}`);
  };
  return (
    <section>
      <div className="title-row">
        <h1>Connections</h1>
        <Link to="add-connection" className="button">
          Add connection
        </Link>
      </div>
      <div className="toolbar">
        <label>
          Status
          <select value={status} onChange={(e) => filter("status", e.target.value)}>
            {STATUSES.map((s) => (
              <option key={s} value={s}>
                {s ? s.replace("_", " ") : "any"}
              </option>
            ))}
          </select>
        </label>
        <label>
          Provider
          <select value={provider} onChange={(e) => filter("provider", e.target.value)}>
            <option value="">any</option>
            {providers.data?.providers.map((p) => (
              <option key={p.name} value={p.name}>
                {p.display_name ?? p.name}
              </option>
            ))}
          </select>
        </label>
        <form
          onSubmit={(e) => {
            e.preventDefault();
            const v = new FormData(e.currentTarget).get("tenant");
            filter("tenant", String(v ?? "").trim());
          }}
        >
          <label>
            Tenant
            <input name="tenant" defaultValue={tenant} placeholder="tenant id" />
          </label>
          <button type="submit">Filter</button>
        </form>
        <form onSubmit={submitJump}>
          <label>
            Open connection
            <input value={jump} onChange={(e) => setJump(e.target.value)} placeholder="connection id" />
          </label>
          <button type="submit">Open</button>
        </form>
      </div>
      <Show a={page} what="connections">
        {(p) =>
          p.connections.length === 0 ? (
            <Empty>{status || provider || tenant ? "No connection matches these filters." : "No connections yet."}</Empty>
          ) : (
            <>
              <TableWrap label="Connections">
                <thead>
                  <tr>
                    <th scope="col">Connection</th>
                    <th scope="col">Status</th>
                    <th scope="col">Provider</th>
                    <th scope="col">Tenant</th>
                    <th scope="col">Last sync</th>
                    <th scope="col">Next sync</th>
                    <th scope="col">Latest run</th>
                  </tr>
                </thead>
                <tbody>
                  {p.connections.map((c) => (
                    <tr key={c.id}>
                      <td>
                        <Link to={`connections/${encodeURIComponent(c.id)}`}>{c.id}</Link>
                      </td>
                      <td>
                        <StatusBadge status={c.status} />
                      </td>
                      <td>{c.provider}</td>
                      <td>{c.tenant}</td>
                      <td>{when(c.last_sync_at)}</td>
                      <td>{when(c.next_sync_at)}</td>
                      <td>
                        {c.last_status ? <StatusBadge status={c.last_status} /> : "—"}
                        {c.last_error && <span className="err-cell"> {c.last_error}</span>}
                      </td>
                    </tr>
                  ))}
                </tbody>
              </TableWrap>
              <Pager pages={pages} nextCursor={p.next_cursor} />
            </>
          )
        }
      </Show>
    </section>
  );
}
