import { api, type FunctionView, type Health, type RunView } from "../api";
import { Link } from "../router";
import { BarChart, durationMs, Empty, fmtMs, Show, StatusBadge, TableWrap, useAsync, when, type Bar } from "../ui";

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

const n = (v: number | null) => (v === null ? "—" : String(v));

function Functions({ fs }: { fs: FunctionView[] }) {
  if (fs.length === 0) return <Empty>No function has reported yet.</Empty>;
  return (
    <TableWrap label="Functions">
      <thead>
        <tr>
          <th scope="col">Function</th>
          <th scope="col">Last invocation</th>
          <th scope="col">Last success</th>
          <th scope="col">Failures (1 h)</th>
          <th scope="col">Last failure</th>
        </tr>
      </thead>
      <tbody>
        {fs.map((f) => (
          <tr key={f.function}>
            <td>{f.function}</td>
            <td>{when(f.last_invocation)}</td>
            <td>{when(f.last_success)}</td>
            <td className={f.failures_last_hour ? "warn" : undefined}>{f.failures_last_hour}</td>
            <td>
              {f.last_failure ? `${when(f.last_failure)}${f.last_error_kind ? ` (${f.last_error_kind})` : ""}` : "—"}
            </td>
          </tr>
        ))}
      </tbody>
    </TableWrap>
  );
}

function HealthPanel({ h }: { h: Health }) {
  return (
    <>
      <section aria-labelledby="h-health">
        <h2 id="h-health">
          Health <StatusBadge status={h.status} />
        </h2>
        {h.store_error && <p className="error">Store: {h.store_error}</p>}
        <h3>Functions</h3>
        {h.functions ? <Functions fs={h.functions} /> : <p className="note">Function heartbeats are unavailable while the store cannot be read.</p>}
        <h3>Queues</h3>
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
                <td>
                  {q.name}
                  {q.unknown_reason && <span className="note"> ({q.unknown_reason})</span>}
                </td>
                <td>{n(q.active)}</td>
                <td>{n(q.scheduled)}</td>
                <td>{n(q.locked)}</td>
                <td className={q.dead_lettered ? "warn" : undefined}>{n(q.dead_lettered)}</td>
              </tr>
            ))}
          </tbody>
        </TableWrap>
      </section>
      <section aria-labelledby="h-attention">
        <h2 id="h-attention">Needs attention</h2>
        {(h.needs_reauth?.count ?? 0) === 0 && (h.overdue_tasks?.count ?? 0) === 0 && !h.queues.some((q) => q.dead_lettered) ? (
          <Empty>Nothing needs a person right now.</Empty>
        ) : (
          <ul className="attention">
            {h.needs_reauth?.ids.map((id) => (
              <li key={`r-${id}`}>
                <Link to={`connections/${encodeURIComponent(id)}`}>{id}</Link> needs re-authorization
              </li>
            ))}
            {h.overdue_tasks?.ids.map((id) => (
              <li key={`o-${id}`}>
                task {id} is overdue
                {id === h.overdue_tasks?.oldest_task && h.overdue_tasks.oldest_since ? ` since ${when(h.overdue_tasks.oldest_since)}` : ""}
              </li>
            ))}
            {h.queues
              .filter((q) => q.dead_lettered)
              .map((q) => (
                <li key={`d-${q.name}`}>
                  {q.dead_lettered} dead letters in {q.name}
                </li>
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
