import { api, type Health, type RunView } from "../api";
import { Link } from "../router";
import { BarChart, durationMs, Empty, fmtMs, Show, StatusBadge, TableWrap, useAsync, type Bar } from "../ui";

const HOUR = 3600_000;

/** The runs of the last 24 hours (newest first, at most `max`). */
async function lastDay(now: number, max = 2000): Promise<RunView[]> {
  const since = new Date(now - 24 * HOUR).toISOString();
  const out: RunView[] = [];
  let cursor: string | null = null;
  do {
    const page = await api.runs({ since, cursor, limit: 500 });
    out.push(...page.runs);
    cursor = page.next_cursor;
  } while (cursor && out.length < max);
  return out;
}

/** Records synced and mean run duration per hour, oldest hour first. Pure. */
export function hourly(runs: RunView[], now: number): { records: Bar[]; durations: Bar[] } {
  const start = Math.floor(now / HOUR) * HOUR - 23 * HOUR;
  const records: Bar[] = [];
  const durations: Bar[] = [];
  const sums = Array.from({ length: 24 }, () => ({ records: 0, ms: 0, n: 0 }));
  for (const r of runs) {
    const i = Math.floor((new Date(r.started_at).getTime() - start) / HOUR);
    if (i < 0 || i >= 24) continue;
    sums[i].records += r.counts.created + r.counts.updated + r.counts.deleted;
    const d = durationMs(r);
    if (d !== null) {
      sums[i].ms += d;
      sums[i].n += 1;
    }
  }
  sums.forEach((s, i) => {
    const label = new Date(start + i * HOUR).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
    records.push({ label, value: s.records });
    durations.push({ label, value: s.n ? s.ms / s.n : 0 });
  });
  return { records, durations };
}

function HealthPanel({ h }: { h: Health }) {
  return (
    <>
      <section aria-labelledby="h-health">
        <h2 id="h-health">
          Health <StatusBadge status={h.status} />
        </h2>
        {h.store_error && <p className="error">Store: {h.store_error}</p>}
        {h.queues ? (
          <TableWrap label="Queues">
            <thead>
              <tr>
                <th scope="col">Queue</th>
                <th scope="col">Active</th>
                <th scope="col">Scheduled</th>
                <th scope="col">Locked</th>
                <th scope="col">Dead letters</th>
              </tr>
            </thead>
            <tbody>
              {h.queues.map((q) => (
                <tr key={q.name}>
                  <td>{q.name}</td>
                  <td>{q.active}</td>
                  <td>{q.scheduled}</td>
                  <td>{q.locked}</td>
                  <td className={q.dead_lettered ? "warn" : undefined}>{q.dead_lettered}</td>
                </tr>
              ))}
            </tbody>
          </TableWrap>
        ) : (
          <p>{h.queues_note ?? "Queue depths are not reported."}</p>
        )}
        {h.not_reported.length > 0 && (
          <p className="note">Not reported: {h.not_reported.join("; ")}</p>
        )}
      </section>
      <section aria-labelledby="h-attention">
        <h2 id="h-attention">Needs attention</h2>
        {(h.needs_reauth?.count ?? 0) === 0 && (h.overdue_tasks?.count ?? 0) === 0 ? (
          <Empty>Nothing needs a person right now.</Empty>
        ) : (
          <ul className="attention">
            {h.needs_reauth?.ids.map((id) => (
              <li key={`r-${id}`}>
                <Link to={`connections/${encodeURIComponent(id)}`}>{id}</Link> needs re-authorization
              </li>
            ))}
            {h.overdue_tasks?.ids.map((id) => (
              <li key={`o-${id}`}>task {id} is overdue</li>
            ))}
          </ul>
        )}
      </section>
    </>
  );
}

export function Overview() {
  const health = useAsync(() => api.health(), []);
  const now = Date.now();
  const runs = useAsync(() => lastDay(now), []);
  return (
    <section>
      <h1>Overview</h1>
      <Show a={health} what="health">
        {(h) => <HealthPanel h={h} />}
      </Show>
      <section aria-labelledby="h-24h">
        <h2 id="h-24h">Last 24 hours</h2>
        <Show a={runs} what="runs">
          {(rs) => {
            const { records, durations } = hourly(rs, now);
            const failed = rs.filter((r) => r.status === "failed").length;
            const mean = rs.map(durationMs).filter((d): d is number => d !== null);
            return (
              <>
                <p>
                  {rs.length} runs, {failed} failed, mean duration {fmtMs(mean.length ? Math.round(mean.reduce((a, b) => a + b, 0) / mean.length) : null)}.{" "}
                  <Link to="runs">All runs</Link>
                </p>
                <div className="charts">
                  <BarChart title="Records synced per hour" bars={records} unit="records" />
                  <BarChart title="Mean run duration per hour" bars={durations} unit="ms" />
                </div>
              </>
            );
          }}
        </Show>
      </section>
    </section>
  );
}
