import { useState } from "react";
import { api, type RunView } from "../api";
import { Link } from "../router";
import { durationMs, Empty, fmtMs, Pager, Show, StatusBadge, TableWrap, useAsync, usePages, when } from "../ui";

export function RunTable({ runs, showConnection = true }: { runs: RunView[]; showConnection?: boolean }) {
  return (
    <TableWrap label="Runs">
      <thead>
        <tr>
          <th scope="col">Run</th>
          {showConnection && <th scope="col">Connection</th>}
          <th scope="col">Object</th>
          <th scope="col">Status</th>
          <th scope="col">Started</th>
          <th scope="col">Duration</th>
          <th scope="col">Records</th>
          <th scope="col">Error</th>
        </tr>
      </thead>
      <tbody>
        {runs.map((r) => (
          <tr key={r.id}>
            <td>
              <Link to={`runs/${encodeURIComponent(r.id)}`}>{r.id}</Link>
            </td>
            {showConnection && (
              <td>
                <Link to={`connections/${encodeURIComponent(r.connection_id)}`}>{r.connection_id}</Link>
              </td>
            )}
            <td>{r.object}</td>
            <td>
              <StatusBadge status={r.status} />
            </td>
            <td>{when(r.started_at)}</td>
            <td>{fmtMs(durationMs(r))}</td>
            <td>{r.counts.created + r.counts.updated + r.counts.deleted}</td>
            <td className="err-cell">{r.error ?? ""}</td>
          </tr>
        ))}
      </tbody>
    </TableWrap>
  );
}

export function Runs() {
  const [status, setStatus] = useState("");
  const pages = usePages();
  const page = useAsync(() => api.runs({ status, cursor: pages.cursor, limit: 50 }), [status, pages.cursor]);
  return (
    <section>
      <h1>Runs</h1>
      <div className="toolbar">
        <label>
          Status
          <select
            value={status}
            onChange={(e) => {
              setStatus(e.target.value);
              pages.reset();
            }}
          >
            <option value="">any</option>
            <option value="running">running</option>
            <option value="succeeded">succeeded</option>
            <option value="failed">failed</option>
          </select>
        </label>
      </div>
      <Show a={page} what="runs">
        {(p) =>
          p.runs.length === 0 ? (
            <Empty>No runs{status ? ` with status ${status}` : " yet"}.</Empty>
          ) : (
            <>
              <RunTable runs={p.runs} />
              <Pager pages={pages} nextCursor={p.next_cursor} />
            </>
          )
        }
      </Show>
    </section>
  );
}

export function RunDetail({ id }: { id: string }) {
  const run = useAsync(() => api.run(id), [id]);
  return (
    <section>
      <p>
        <Link to="runs">← Runs</Link>
      </p>
      <h1>Run {id}</h1>
      <Show a={run} what="run">
        {(r) => (
          <>
            <dl className="facts">
              <dt>Connection</dt>
              <dd>
                <Link to={`connections/${encodeURIComponent(r.connection_id)}`}>{r.connection_id}</Link>
              </dd>
              <dt>Object</dt>
              <dd>{r.object}</dd>
              <dt>Status</dt>
              <dd>
                <StatusBadge status={r.status} /> ({r.state})
              </dd>
              <dt>Started</dt>
              <dd>{when(r.started_at)}</dd>
              <dt>Finished</dt>
              <dd>{when(r.finished_at)}</dd>
              <dt>Duration</dt>
              <dd>{fmtMs(durationMs(r))}</dd>
            </dl>
            {r.error && (
              <div className="error" role="alert">
                <strong>Error</strong>
                <p>{r.error}</p>
              </div>
            )}
            <h2>Counts</h2>
            <TableWrap label="Run counts">
              <thead>
                <tr>
                  {Object.keys(r.counts).map((k) => (
                    <th scope="col" key={k}>
                      {k}
                    </th>
                  ))}
                </tr>
              </thead>
              <tbody>
                <tr>
                  {Object.values(r.counts).map((v, i) => (
                    <td key={i}>{v}</td>
                  ))}
                </tr>
              </tbody>
            </TableWrap>
          </>
        )}
      </Show>
    </section>
  );
}
