import { useState } from "react";
import { api, type NotificationsView, type RuleView } from "../api";
import { Empty, ErrorBox, Show, TableWrap, useAction, useAsync } from "../ui";

const SEVERITIES = ["info", "warning", "critical"];

function toggle(list: string[], item: string, on: boolean): string[] {
  return on ? [...list.filter((x) => x !== item), item] : list.filter((x) => x !== item);
}

/** Channel checkboxes: the configured channels rules may name (not product ones). */
function ChannelPick({ label, channels, value, onChange }: { label: string; channels: string[]; value: string[]; onChange: (v: string[]) => void }) {
  return (
    <fieldset className="channels">
      <legend>{label}</legend>
      {channels.map((c) => (
        <label key={c}>
          <input type="checkbox" checked={value.includes(c)} onChange={(e) => onChange(toggle(value, c, e.target.checked))} /> {c}
        </label>
      ))}
    </fieldset>
  );
}

function SeverityPick({ label, value, onChange }: { label: string; value: string; onChange: (v: string) => void }) {
  return (
    <label>
      {label}{" "}
      <select value={value} onChange={(e) => onChange(e.target.value)}>
        {SEVERITIES.map((s) => (
          <option key={s}>{s}</option>
        ))}
      </select>
    </label>
  );
}

/** One rule's fields, with move and remove buttons. */
function RuleFields({ r, n, count, kinds, channels, set, move, remove }: {
  r: RuleView;
  n: number;
  count: number;
  kinds: string[];
  channels: string[];
  set: (r: RuleView) => void;
  move: (by: number) => void;
  remove: () => void;
}) {
  return (
    <fieldset className="rule">
      <legend>Rule {n}</legend>
      <label>
        Tenant{" "}
        <input value={r.tenant ?? ""} placeholder="any tenant" onChange={(e) => set({ ...r, tenant: e.target.value.trim() ? e.target.value : null })} />
      </label>{" "}
      <SeverityPick label="Minimum severity" value={r.min_severity} onChange={(min_severity) => set({ ...r, min_severity })} />
      <label className="block">
        Kinds (none selected: every kind){" "}
        <select multiple size={4} value={r.kinds} onChange={(e) => set({ ...r, kinds: Array.from(e.target.selectedOptions, (o) => o.value) })}>
          {kinds.map((k) => (
            <option key={k}>{k}</option>
          ))}
        </select>
      </label>
      <p className="note">Kinds: {r.kinds.length ? r.kinds.join(", ") : "every kind"}</p>
      <ChannelPick label={`Channels of rule ${n}`} channels={channels} value={r.channels} onChange={(c) => set({ ...r, channels: c })} />
      <button type="button" disabled={n === 1} onClick={() => move(-1)}>
        Move rule {n} up
      </button>{" "}
      <button type="button" disabled={n === count} onClick={() => move(1)}>
        Move rule {n} down
      </button>{" "}
      <button type="button" className="danger" onClick={remove}>
        Remove rule {n}
      </button>
    </fieldset>
  );
}

/** The ordered rules and the default route, edited and saved as a whole. */
function RulesEditor({ v, onSaved }: { v: NotificationsView; onSaved: (version: number) => void }) {
  const [rules, setRules] = useState<RuleView[]>(v.rules);
  const [dflt, setDflt] = useState<RuleView | null>(v.default_route);
  const save = useAction();
  const channels = v.channels.filter((c) => c.kind !== "product").map((c) => c.name);
  const edit = (f: (rs: RuleView[]) => RuleView[]) => setRules((rs) => f([...rs]));
  const move = (i: number, by: number) =>
    edit((rs) => {
      const [r] = rs.splice(i, 1);
      rs.splice(i + by, 0, r);
      return rs;
    });
  return (
    <form
      onSubmit={async (e) => {
        e.preventDefault();
        let version = v.rules_version;
        if (await save.run(async () => (version = (await api.saveRules({ rules, default_route: dflt }, v.rules_version)).rules_version))) onSaved(version);
      }}
    >
      <p className="note">
        {v.rules_source === "store" ? `Saved here (version ${v.rules_version}); they replace the configuration file's rules.` : "From the configuration file until you save them here."} The first rule that matches an event's tenant and kind decides; below its minimum severity the event is dropped.
      </p>
      {rules.length === 0 && <Empty>No rules.</Empty>}
      {rules.map((r, i) => (
        <RuleFields
          key={i}
          r={r}
          n={i + 1}
          count={rules.length}
          kinds={v.event_kinds}
          channels={channels}
          set={(nr) => edit((rs) => rs.map((x, j) => (j === i ? nr : x)))}
          move={(by) => move(i, by)}
          remove={() => edit((rs) => rs.filter((_, j) => j !== i))}
        />
      ))}
      <button type="button" onClick={() => edit((rs) => [...rs, { tenant: null, kinds: [], min_severity: "warning", channels: channels.slice(0, 1) }])}>
        Add rule
      </button>
      <fieldset className="rule">
        <legend>Default route</legend>
        <label>
          <input
            type="checkbox"
            checked={dflt !== null}
            onChange={(e) => setDflt(e.target.checked ? { tenant: null, kinds: [], min_severity: "warning", channels: channels.slice(0, 1) } : null)}
          />{" "}
          Send events no rule matches
        </label>
        {dflt && (
          <>
            {" "}
            <SeverityPick label="Default minimum severity" value={dflt.min_severity} onChange={(min_severity) => setDflt({ ...dflt, min_severity })} />
            <ChannelPick label="Channels of the default route" channels={channels} value={dflt.channels} onChange={(c) => setDflt({ ...dflt, channels: c })} />
          </>
        )}
      </fieldset>
      <button type="submit" disabled={save.busy}>
        Save rules
      </button>
      {save.error && <ErrorBox error={save.error} />}
    </form>
  );
}

export function Notifications() {
  const n = useAsync(() => api.notifications(), []);
  const act = useAction();
  const [result, setResult] = useState<{ channel: string; delivered: boolean; answer: string } | null>(null);
  const [savedVersion, setSavedVersion] = useState<number | null>(null);
  return (
    <section>
      <h1>Notifications</h1>
      <p className="note">
        Channels come from the notification configuration (<code>SYNCBRIDGE_NOTIFY_CONFIG</code>), which holds their URLs and secrets; edit them there. Rules are edited here.
      </p>
      <Show a={n} what="notification settings">
        {(v) =>
          !v.configured ? (
            <Empty>No notification service is configured.</Empty>
          ) : (
            <>
              {v.outbox && (
                <p>
                  Outbox: {v.outbox.pending} pending, {v.outbox.delivered} delivered, <span className={v.outbox.dead ? "warn" : undefined}>{v.outbox.dead} dead</span>.
                </p>
              )}
              <h2>Channels</h2>
              {v.channels.length === 0 ? (
                <Empty>No channels.</Empty>
              ) : (
                <TableWrap label="Channels">
                  <thead>
                    <tr>
                      <th scope="col">Name</th>
                      <th scope="col">Kind</th>
                      <th scope="col">
                        <span className="sr-only">Actions</span>
                      </th>
                    </tr>
                  </thead>
                  <tbody>
                    {v.channels.map((c) => (
                      <tr key={c.name}>
                        <td>{c.name}</td>
                        <td>{c.kind}</td>
                        <td>
                          <button
                            type="button"
                            disabled={act.busy}
                            onClick={async () => {
                              setResult(null);
                              let r = { delivered: false, answer: "" };
                              if (await act.run(async () => (r = await api.testNotification(c.name)))) setResult({ channel: c.name, ...r });
                            }}
                          >
                            Send a test to {c.name}
                          </button>
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </TableWrap>
              )}
              {result && (
                <p role="status" className={result.delivered ? "note" : "error"}>
                  {result.channel}: {result.delivered ? "delivered" : "not delivered"} — {result.answer}
                </p>
              )}
              {act.error && <ErrorBox error={act.error} />}
              <h2>Rules</h2>
              <RulesEditor
                key={v.rules_version}
                v={v}
                onSaved={(version) => {
                  setSavedVersion(version);
                  n.reload();
                }}
              />
              {savedVersion !== null && (
                <p role="status" className="note">
                  Rules saved (version {savedVersion}).
                </p>
              )}
            </>
          )
        }
      </Show>
    </section>
  );
}
