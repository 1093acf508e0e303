import { useState, type FormEvent } from "react";
import { api, startConnect, type ConnectionView } from "../api";
import { Link, useLoc } from "../router";
import { BarChart, durationMs, Empty, ErrorBox, Show, StatusBadge, TableWrap, useAction, useAsync, useEvery, when } from "../ui";
import { RunTable } from "./Runs";
import { ConflictPolicies } from "./ConflictPolicies";
import { Webhook } from "./Webhook";

function Actions({ c, onChange }: { c: ConnectionView; onChange: () => void }) {
  const { go, search } = useLoc();
  const refused = search.get("error");
  const act = useAction();
  const [note, setNote] = useState("");
  const [typed, setTyped] = useState("");
  const doIt = async (label: string, f: () => Promise<unknown>) => {
    setNote("");
    if (await act.run(f)) {
      setNote(label);
      onChange();
    }
  };
  return (
    <section aria-labelledby="h-actions">
      <h2 id="h-actions">Actions</h2>
      <div className="actions">
        <button type="button" disabled={act.busy} onClick={() => doIt("Sync requested: runs start within seconds.", () => api.syncNow(c.id))}>
          Sync now
        </button>
        {c.status === "needs_reauth" && (
          <button
            type="button"
            disabled={act.busy}
            onClick={() =>
              act.run(() =>
                startConnect({
                  tenant: c.tenant,
                  provider: c.provider,
                  connection_id: c.id,
                  base_url: c.base_url,
                  return_page: `connections/${encodeURIComponent(c.id)}`,
                }),
              )
            }
          >
            Reconnect
          </button>
        )}
        {c.status === "disabled" ? (
          <button type="button" disabled={act.busy} onClick={() => doIt("Resumed.", () => api.resume(c.id))}>
            Resume
          </button>
        ) : (
          <button type="button" disabled={act.busy} onClick={() => doIt("Paused.", () => api.pause(c.id))}>
            Pause
          </button>
        )}
      </div>
      <p role="status" className="note">
        {note}
      </p>
      {act.error && <ErrorBox error={act.error} />}
      {refused && (
        <div className="error" role="alert">
          <strong>Not reconnected</strong>
          <p>The provider did not authorize ({refused}); the connection is unchanged.</p>
        </div>
      )}
      <details className="danger-zone">
        <summary>Delete this connection</summary>
        <p>Deleting removes the connection, its tasks and its synced records. Type its id to confirm.</p>
        <label>
          Connection id
          <input value={typed} onChange={(e) => setTyped(e.target.value)} />
        </label>
        <button
          type="button"
          className="danger"
          disabled={typed !== c.id || act.busy}
          onClick={async () => {
            if (await act.run(() => api.deleteConnection(c.id))) go("connections");
          }}
        >
          Delete {c.id}
        </button>
      </details>
    </section>
  );
}

function Schedule({ c, interval, onChange }: { c: ConnectionView; interval: number | undefined; onChange: () => void }) {
  const act = useAction();
  const [value, setValue] = useState(interval ? String(interval) : "");
  const [saved, setSaved] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setSaved(false);
    const n = Number(value);
    if (await act.run(() => api.updateConnection(c.id, { interval_secs: n }))) {
      setSaved(true);
      onChange();
    }
  };
  return (
    <form onSubmit={submit} className="inline-form" aria-label="Schedule">
      <label>
        Seconds between pulls
        <input type="number" min={1} value={value} onChange={(e) => setValue(e.target.value)} required />
      </label>
      <button type="submit" disabled={act.busy}>
        Save
      </button>
      {saved && <span role="status">Saved.</span>}
      {act.error && <ErrorBox error={act.error} />}
    </form>
  );
}

export function ConnectionDetail({ id }: { id: string }) {
  const conn = useAsync(() => api.connection(id), [id]);
  const tasks = useAsync(() => api.tasks(id), [id]);
  const runs = useAsync(() => api.runs({ connection_id: id, limit: 100 }), [id]);
  const reload = () => {
    conn.reload();
    tasks.reload();
    runs.reload();
  };
  // Runs and cursors move on their own: refresh them while the page is open.
  useEvery(3000, () => {
    tasks.reload();
    runs.reload();
  });
  return (
    <section>
      <p>
        <Link to="connections">← Connections</Link>
      </p>
      <h1>Connection {id}</h1>
      <Show a={conn} what="connection">
        {(c) => (
          <>
            <dl className="facts">
              <dt>Status</dt>
              <dd>
                <StatusBadge status={c.status} />
              </dd>
              <dt>Provider</dt>
              <dd>{c.provider}</dd>
              <dt>Tenant</dt>
              <dd>{c.tenant}</dd>
              <dt>Base URL</dt>
              <dd>{c.base_url ?? "connector default"}</dd>
              <dt>Webhooks</dt>
              <dd>{c.webhook_scheme ?? "not set up"}</dd>
              <dt>Created</dt>
              <dd>{when(c.created_at)}</dd>
            </dl>
            <Actions c={c} onChange={reload} />
            <section aria-labelledby="h-schedule">
              <h2 id="h-schedule">Schedule</h2>
              <Schedule c={c} interval={tasks.data?.tasks[0]?.interval_secs} onChange={reload} key={tasks.data?.tasks[0]?.interval_secs ?? 0} />
            </section>
          </>
        )}
      </Show>
      <section aria-labelledby="h-objects">
        <h2 id="h-objects">Objects and cursors</h2>
        <Show a={tasks} what="objects">
          {(t) =>
            t.tasks.length === 0 ? (
              <Empty>This connection syncs no objects.</Empty>
            ) : (
              <TableWrap label="Objects">
                <thead>
                  <tr>
                    <th scope="col">Object</th>
                    <th scope="col">Direction</th>
                    <th scope="col">Last sync</th>
                    <th scope="col">Last result</th>
                    <th scope="col">Next sync</th>
                    <th scope="col">Cursor</th>
                  </tr>
                </thead>
                <tbody>
                  {t.tasks.map((k) => (
                    <tr key={k.id}>
                      <td>{k.object}</td>
                      <td>{k.direction}</td>
                      <td>{when(k.last_run_at)}</td>
                      <td>
                        {k.last_result ? <StatusBadge status={k.last_result.status} /> : "—"}
                        {k.leased && " (running)"}
                        {k.stalled && " (stalled)"}
                        {k.last_result?.error && <span className="err-cell"> {k.last_result.error}</span>}
                      </td>
                      <td>{when(k.next_run_at)}</td>
                      <td>
                        <code className="cursor">{k.cursor ?? "—"}</code>
                      </td>
                    </tr>
                  ))}
                </tbody>
              </TableWrap>
            )
          }
        </Show>
      </section>
      <ConflictPolicies id={id} />
      <Webhook id={id} />
      <section aria-labelledby="h-runs">
        <h2 id="h-runs">Runs</h2>
        <Show a={runs} what="runs">
          {(p) =>
            p.runs.length === 0 ? (
              <Empty>No runs yet: the first starts when the scheduler next ticks, or on Sync now.</Empty>
            ) : (
              <>
                <BarChart
                  title="Duration of the latest runs"
                  unit="ms"
                  bars={[...p.runs].reverse().map((r) => ({ label: new Date(r.started_at).toLocaleTimeString(), value: durationMs(r) ?? 0 }))}
                />
                <RunTable runs={p.runs} showConnection={false} />
              </>
            )
          }
        </Show>
      </section>
    </section>
  );
}
