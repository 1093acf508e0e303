import { useState } from "react";
import { api, type RuleView } from "../api";
import { Empty, ErrorBox, Show, TableWrap, useAction, useAsync } from "../ui";

function RuleRow({ r, label }: { r: RuleView; label: string }) {
  return (
    <tr>
      <td>{label}</td>
      <td>{r.tenant ?? "any"}</td>
      <td>{r.kinds.length ? r.kinds.join(", ") : "any"}</td>
      <td>{r.min_severity}</td>
      <td>{r.channels.join(", ")}</td>
    </tr>
  );
}

export function Notifications() {
  const n = useAsync(() => api.notifications(), []);
  const act = useAction();
  const [result, setResult] = useState<{ channel: string; delivered: boolean; answer: string } | null>(null);
  return (
    <section>
      <h1>Notifications</h1>
      <p className="note">
        Channels and rules come from the notification configuration (<code>SYNCBRIDGE_NOTIFY_CONFIG</code>); edit it there.
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
              {v.rules.length === 0 && !v.default_route ? (
                <Empty>No rules: nothing is routed.</Empty>
              ) : (
                <TableWrap label="Rules">
                  <thead>
                    <tr>
                      <th scope="col">Order</th>
                      <th scope="col">Tenant</th>
                      <th scope="col">Kinds</th>
                      <th scope="col">Minimum severity</th>
                      <th scope="col">Channels</th>
                    </tr>
                  </thead>
                  <tbody>
                    {v.rules.map((r, i) => (
                      <RuleRow key={i} r={r} label={String(i + 1)} />
                    ))}
                    {v.default_route && <RuleRow r={v.default_route} label="default" />}
                  </tbody>
                </TableWrap>
              )}
            </>
          )
        }
      </Show>
    </section>
  );
}
