import { useState, type FormEvent, type ReactNode } from "react";
import { api, ApiError, type ConnectionPolicies, type Policy, type ProviderView } from "../api";
import { Empty, ErrorBox, Show, useAction, useAsync } from "../ui";

const POLICIES: [Policy, string][] = [
  ["source_wins", "Provider wins (source_wins)"],
  ["target_wins", "Ours wins (target_wins)"],
  ["latest", "Latest change wins (latest)"],
  ["manual", "Manual: park for a person (manual)"],
];

/** One per-field override being edited (`field` empty until chosen). */
export interface FieldRow {
  key: number;
  field: string;
  policy: Policy;
}

export interface ObjectDraft {
  name: string;
  policy: Policy | "";
  rows: FieldRow[];
}

/** The form's state: `""` = not set at that level. */
export interface Draft {
  policy: Policy | "";
  objects: ObjectDraft[];
}

let nextKey = 0;

/** The editable form of `conflicts`, with a section for each of `objects` and every object it names. */
export function toDraft(conflicts: ConnectionPolicies | undefined, objects: string[]): Draft {
  const c = conflicts ?? {};
  const names = [...new Set([...objects, ...Object.keys(c.objects ?? {})])].sort();
  return {
    policy: c.policy ?? "",
    objects: names.map((name) => {
      const o = c.objects?.[name] ?? {};
      return {
        name,
        policy: o.policy ?? "",
        rows: Object.entries(o.fields ?? {}).map(([field, policy]) => ({ key: nextKey++, field, policy })),
      };
    }),
  };
}

/** The document PATCH takes: unset levels and objects with nothing set left out. */
export function toDocument(d: Draft): ConnectionPolicies {
  const doc: ConnectionPolicies = {};
  if (d.policy) doc.policy = d.policy;
  for (const o of d.objects) {
    if (!o.policy && o.rows.length === 0) continue;
    const entry: { policy?: Policy; fields?: Record<string, Policy> } = {};
    if (o.policy) entry.policy = o.policy;
    if (o.rows.length) entry.fields = Object.fromEntries(o.rows.map((r) => [r.field, r.policy]));
    doc.objects = { ...doc.objects, [o.name]: entry };
  }
  return doc;
}

function PolicySelect({ value, unset, onChange, children }: { value: Policy | ""; unset?: string; onChange: (p: Policy | "") => void; children: ReactNode }) {
  return (
    <label>
      {children}
      <select value={value} onChange={(e) => onChange(e.target.value as Policy | "")}>
        {unset !== undefined && <option value="">{unset}</option>}
        {POLICIES.map(([p, text]) => (
          <option key={p} value={p}>
            {text}
          </option>
        ))}
      </select>
    </label>
  );
}

function ObjectPolicies({ o, fields, onChange }: { o: ObjectDraft; fields: string[]; onChange: (o: ObjectDraft) => void }) {
  const setRow = (key: number, change: Partial<FieldRow>) => onChange({ ...o, rows: o.rows.map((r) => (r.key === key ? { ...r, ...change } : r)) });
  const free = fields.filter((f) => !o.rows.some((r) => r.field === f));
  return (
    <fieldset className="policy-object">
      <legend>{o.name}</legend>
      <PolicySelect value={o.policy} unset="Connection's policy (inherit)" onChange={(policy) => onChange({ ...o, policy })}>
        Object-wide policy<span className="sr-only"> for {o.name}</span>
      </PolicySelect>
      {o.rows.length > 0 && (
        <ul className="overrides" aria-label={`Field overrides of ${o.name}`}>
          {o.rows.map((r, i) => {
            const name = r.field ? `${o.name}.${r.field}` : `${o.name} override ${i + 1}`;
            return (
              <li key={r.key}>
                <label>
                  Field<span className="sr-only"> of {o.name} override {i + 1}</span>
                  <select value={r.field} onChange={(e) => setRow(r.key, { field: e.target.value })}>
                    <option value="">Choose a field</option>
                    {[...(r.field ? [r.field] : []), ...free].sort().map((f) => (
                      <option key={f} value={f}>
                        {f}
                      </option>
                    ))}
                  </select>
                </label>
                <PolicySelect value={r.policy} onChange={(policy) => setRow(r.key, { policy: policy || "manual" })}>
                  Policy<span className="sr-only"> for {name}</span>
                </PolicySelect>
                <button type="button" onClick={() => onChange({ ...o, rows: o.rows.filter((x) => x.key !== r.key) })}>
                  Remove<span className="sr-only"> {name}</span>
                </button>
              </li>
            );
          })}
        </ul>
      )}
      <button type="button" disabled={free.length === 0} onClick={() => onChange({ ...o, rows: [...o.rows, { key: nextKey++, field: "", policy: "manual" }] })}>
        Add field override<span className="sr-only"> to {o.name}</span>
      </button>
    </fieldset>
  );
}

interface Loaded {
  id: string;
  etag: string | null;
  conflicts: ConnectionPolicies | undefined;
  objects: string[];
  provider: ProviderView;
}

/**
 * Saves `doc` under the version the form was loaded at. When that version
 * is stale (412) but the policies the form started from are still the
 * stored ones, only other fields moved (a pause, a schedule change on this
 * page): saving again under the new version overwrites nobody's policy
 * change. Otherwise the 412 stands ("changed elsewhere").
 */
async function save(d: Loaded, doc: ConnectionPolicies) {
  try {
    await api.setConflictPolicies(d.id, doc, d.etag);
  } catch (e) {
    if (!(e instanceof ApiError && e.status === 412)) throw e;
    const now = await api.connectionTagged(d.id);
    if (JSON.stringify(now.data.conflicts ?? {}) !== JSON.stringify(d.conflicts ?? {})) throw e;
    await api.setConflictPolicies(d.id, doc, now.etag);
  }
}

function PolicyForm({ d, onSaving, onSaved, onReload }: { d: Loaded; onSaving: () => void; onSaved: () => void; onReload: () => void }) {
  const [draft, setDraft] = useState(() => toDraft(d.conflicts, d.objects));
  const [unchosen, setUnchosen] = useState(false);
  const act = useAction();
  const fieldsOf = (object: string) => d.provider.objects.find((o) => o.name === object)?.fields ?? [];
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    onSaving();
    const blank = draft.objects.some((o) => o.rows.some((r) => !r.field));
    setUnchosen(blank);
    if (blank) return;
    if (await act.run(() => save(d, toDocument(draft)))) onSaved();
  };
  const stale = act.error instanceof ApiError && act.error.status === 412;
  return (
    <form onSubmit={submit} aria-label="Conflict policies" className="policies">
      <PolicySelect value={draft.policy} unset="Not set: manual" onChange={(policy) => setDraft({ ...draft, policy })}>
        Connection-wide policy
      </PolicySelect>
      {draft.objects.length === 0 ? (
        <Empty>This connection syncs no objects: only the connection-wide policy applies.</Empty>
      ) : (
        draft.objects.map((o) => (
          <ObjectPolicies key={o.name} o={o} fields={fieldsOf(o.name)} onChange={(n) => setDraft({ ...draft, objects: draft.objects.map((x) => (x.name === n.name ? n : x)) })} />
        ))
      )}
      <div className="actions">
        <button type="submit" disabled={act.busy}>
          Save policies
        </button>
      </div>
      {unchosen && (
        <p className="error" role="alert">
          Choose a field for each override, or remove the row. Nothing was saved.
        </p>
      )}
      {stale ? (
        <div className="error" role="alert">
          <strong>Changed elsewhere</strong>
          <p>This connection's conflict policies were changed since the page loaded them; nothing was saved. Reload to see the current policies, then make your change again.</p>
          <button type="button" onClick={onReload}>
            Reload policies
          </button>
        </div>
      ) : (
        act.error && <ErrorBox error={act.error} />
      )}
    </form>
  );
}

/**
 * A connection's conflict policies: the connection-wide one, one per object
 * and per-field overrides (the most specific wins). Saved under the version
 * it was loaded at (If-Match): a change of the policies made elsewhere
 * meanwhile is refused (412) and shown, never overwritten.
 */
export function ConflictPolicies({ id }: { id: string }) {
  const loaded = useAsync<Loaded>(async () => {
    const [conn, tasks] = await Promise.all([api.connectionTagged(id), api.tasks(id)]);
    const provider = await api.provider(conn.data.provider);
    const objects = [...new Set(tasks.tasks.map((t) => t.object))];
    return { id, etag: conn.etag, conflicts: conn.data.conflicts, objects, provider };
  }, [id]);
  const [saved, setSaved] = useState(false);
  return (
    <section aria-labelledby="h-policies">
      <h2 id="h-policies">Conflict policies</h2>
      <p className="note">
        When a field changed both at the provider and here since the last sync, its policy decides: the provider's value, ours, the later change, or manual (parked on the Conflicts page for a person). A field's
        override beats its object's policy, which beats the connection's.
      </p>
      <Show a={loaded} what="conflict policies">
        {(d) => (
          <PolicyForm
            key={d.etag ?? ""}
            d={d}
            onSaving={() => setSaved(false)}
            onSaved={() => {
              setSaved(true);
              loaded.reload();
            }}
            onReload={() => {
              setSaved(false);
              loaded.reload();
            }}
          />
        )}
      </Show>
      <p role="status" className="note">
        {saved ? "Saved: the next push of a record resolves under these policies." : ""}
      </p>
    </section>
  );
}
