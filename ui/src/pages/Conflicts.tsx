import { useState, type FormEvent } from "react";
import { api, type ConflictView } from "../api";
import { Link } from "../router";
import { Empty, ErrorBox, Show, TableWrap, useAction, useAsync, when } from "../ui";

const show = (v: unknown) => (v === undefined ? "—" : JSON.stringify(v));

/** One record's parked fields, base / ours / theirs side by side, and the three ways out. */
function Conflict({ c, onDone }: { c: ConflictView; onDone: (msg: string) => void }) {
  const act = useAction();
  const [typed, setTyped] = useState<Record<string, string>>({});
  const label = `${c.connection_id} ${c.object} ${c.record_id}`;
  const take = async (side: "ours" | "theirs") => {
    if (await act.run(() => api.resolve(c, { take: side }))) onDone(`${label}: took ${side}; the record is pushed.`);
  };
  const submitTyped = async (e: FormEvent) => {
    e.preventDefault();
    const value: Record<string, unknown> = {};
    for (const f of c.fields) {
      const text = typed[f.field];
      if (text === undefined || text === "") continue;
      try {
        value[f.field] = JSON.parse(text);
      } catch {
        value[f.field] = text;
      }
    }
    if (Object.keys(value).length === 0) return;
    if (await act.run(() => api.resolve(c, { value }))) onDone(`${label}: typed values saved; the record is pushed.`);
  };
  return (
    <section className="panel" aria-label={`Conflict on ${label}`}>
      <h2>
        <Link to={`connections/${encodeURIComponent(c.connection_id)}`}>{c.connection_id}</Link> · {c.object} · {c.record_id}
      </h2>
      <form onSubmit={submitTyped}>
        <TableWrap label={`Parked fields of ${label}`}>
          <thead>
            <tr>
              <th scope="col">Field</th>
              <th scope="col">Base</th>
              <th scope="col">Ours</th>
              <th scope="col">Theirs</th>
              <th scope="col">Or type a value</th>
            </tr>
          </thead>
          <tbody>
            {c.fields.map((f) => (
              <tr key={f.field}>
                <th scope="row">{f.field}</th>
                <td>
                  <code>{show(f.base)}</code>
                </td>
                <td>
                  <code>{show(f.ours)}</code>
                </td>
                <td>
                  <code>{show(f.theirs)}</code>
                </td>
                <td>
                  <input aria-label={`Value for ${f.field}`} value={typed[f.field] ?? ""} onChange={(e) => setTyped({ ...typed, [f.field]: e.target.value })} placeholder="JSON or text" />
                </td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
        <div className="actions">
          <button type="button" disabled={act.busy} onClick={() => take("ours")}>
            Take ours
          </button>
          <button type="button" disabled={act.busy} onClick={() => take("theirs")}>
            Take theirs
          </button>
          <button type="submit" disabled={act.busy || !Object.values(typed).some((v) => v)}>
            Save typed values
          </button>
        </div>
      </form>
      {act.error && <ErrorBox error={act.error} />}
    </section>
  );
}

function Audit({ id }: { id: string }) {
  const audit = useAsync(() => api.audit(id), [id]);
  return (
    <section aria-labelledby="h-audit">
      <h2 id="h-audit">Audit trail of {id}</h2>
      <Show a={audit} what="audit trail">
        {(a) =>
          a.entries.length === 0 ? (
            <Empty>No decisions recorded yet.</Empty>
          ) : (
            <TableWrap label="Audit trail">
              <thead>
                <tr>
                  <th scope="col">When</th>
                  <th scope="col">Object</th>
                  <th scope="col">Record</th>
                  <th scope="col">Decision</th>
                </tr>
              </thead>
              <tbody>
                {[...a.entries].reverse().map((e) => (
                  <tr key={e.key}>
                    <td>{when(e.at)}</td>
                    <td>{e.object}</td>
                    <td>{e.record_id}</td>
                    <td>
                      <code className="cursor">{JSON.stringify(e.entry)}</code>
                    </td>
                  </tr>
                ))}
              </tbody>
            </TableWrap>
          )
        }
      </Show>
    </section>
  );
}

export function Conflicts() {
  const list = useAsync(() => api.conflicts({ limit: 50 }), []);
  const [note, setNote] = useState("");
  const [auditOf, setAuditOf] = useState("");
  return (
    <section>
      <h1>Conflicts</h1>
      <p>Fields both sides changed, parked until a person decides. The decision is audited and the record pushed.</p>
      <p role="status" className="note">
        {note}
      </p>
      <Show a={list} what="conflicts">
        {(p) =>
          p.conflicts.length === 0 ? (
            <Empty>No parked conflicts.</Empty>
          ) : (
            <>
              {p.conflicts.map((c) => (
                <Conflict
                  key={`${c.connection_id}/${c.object}/${c.record_id}/${c.version}`}
                  c={c}
                  onDone={(msg) => {
                    setNote(msg);
                    setAuditOf(c.connection_id);
                    list.reload();
                  }}
                />
              ))}
            </>
          )
        }
      </Show>
      <form
        className="inline-form"
        aria-label="Show an audit trail"
        onSubmit={(e) => {
          e.preventDefault();
          const v = String(new FormData(e.currentTarget).get("conn") ?? "").trim();
          if (v) setAuditOf(v);
        }}
      >
        <label>
          Audit trail of connection
          <input name="conn" defaultValue={auditOf} key={auditOf} placeholder="connection id" />
        </label>
        <button type="submit">Show</button>
      </form>
      {auditOf && <Audit id={auditOf} key={auditOf} />}
    </section>
  );
}
