import { useState } from "react";
import { api } from "../api";
import { ConfirmButton, Empty, ErrorBox, Show, TableWrap, useAction, useAsync, when } from "../ui";

function Entry({ id, onDone }: { id: number; onDone: (msg: string) => void }) {
  const entry = useAsync(() => api.quarantineEntry(id), [id]);
  const act = useAction();
  return (
    <section aria-labelledby="h-entry" className="panel">
      <h2 id="h-entry">Entry {id}</h2>
      <Show a={entry} what="entry">
        {(e) => (
          <>
            <dl className="facts">
              <dt>Source</dt>
              <dd>{e.source}</dd>
              <dt>Reason</dt>
              <dd>{e.reason}</dd>
              <dt>Connection</dt>
              <dd>{e.connection_id ?? "—"}</dd>
              <dt>Message id</dt>
              <dd>{e.message_id ?? "—"}</dd>
              <dt>Set aside</dt>
              <dd>{when(e.at)}</dd>
              <dt>Size</dt>
              <dd>{e.bytes} bytes</dd>
            </dl>
            <h3>Payload</h3>
            <pre className="payload" tabIndex={0} aria-label="Payload">
              {e.body_text ?? `(binary, base64) ${e.body_base64}`}
            </pre>
            <div className="actions">
              <button
                type="button"
                disabled={act.busy}
                onClick={async () => {
                  let what = "";
                  const ok = await act.run(async () => {
                    const r = await api.replay(id);
                    what = r.jobs !== null ? `${r.outcome} to ${r.jobs} job${r.jobs === 1 ? "" : "s"}` : r.queue ? `${r.outcome} to ${r.queue}` : r.outcome;
                  });
                  if (ok) onDone(`Entry ${id} replayed: ${what}.`);
                }}
              >
                Replay
              </button>
              <ConfirmButton
                label="Discard"
                danger
                confirm="Discard this entry for good?"
                onConfirm={async () => {
                  if (await act.run(() => api.discard(id))) onDone(`Entry ${id} discarded.`);
                }}
              />
            </div>
            {act.error && <ErrorBox error={act.error} />}
          </>
        )}
      </Show>
    </section>
  );
}

export function Quarantine() {
  const list = useAsync(() => api.quarantine(), []);
  const [open, setOpen] = useState<number | null>(null);
  const [note, setNote] = useState("");
  return (
    <section>
      <h1>Quarantine</h1>
      <p>Messages and webhook events set aside because they could not be handled. Inspect, replay or discard them.</p>
      <p role="status" className="note">
        {note}
      </p>
      <Show a={list} what="quarantine">
        {(p) =>
          p.entries.length === 0 ? (
            <Empty>Nothing is quarantined.</Empty>
          ) : (
            <TableWrap label="Quarantined entries">
              <thead>
                <tr>
                  <th scope="col">Entry</th>
                  <th scope="col">Source</th>
                  <th scope="col">Reason</th>
                  <th scope="col">Connection</th>
                  <th scope="col">Set aside</th>
                </tr>
              </thead>
              <tbody>
                {p.entries.map((e) => (
                  <tr key={e.id} className={open === e.id ? "selected" : undefined}>
                    <td>
                      <button type="button" className="link" aria-expanded={open === e.id} onClick={() => setOpen(open === e.id ? null : e.id)}>
                        Inspect {e.id}
                      </button>
                    </td>
                    <td>{e.source}</td>
                    <td>{e.reason}</td>
                    <td>{e.connection_id ?? "—"}</td>
                    <td>{when(e.at)}</td>
                  </tr>
                ))}
              </tbody>
            </TableWrap>
          )
        }
      </Show>
      {open !== null && (
        <Entry
          id={open}
          key={open}
          onDone={(msg) => {
            setNote(msg);
            setOpen(null);
            list.reload();
          }}
        />
      )}
    </section>
  );
}
