import { api, type FunctionView, type Health, type RunStats } from "../api";
import { Link } from "../router";
import { BarChart, Empty, fmtMs, Show, StatusBadge, TableWrap, useAsync, when, type Bar } from "../ui";

/** The charts' bars and the period's totals from the server's hourly stats. Pure. */
export function hourly(stats: RunStats): { records: Bar[]; durations: Bar[]; runs: number; failed: number; meanMs: number | null } {
  const label = (t: string) => new Date(t).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
  let runs = 0;
  let failed = 0;
  let ms = 0;
  let timed = 0;
  for (const h of stats.hours) {
    runs += h.runs;
    failed += h.failed;
    if (h.mean_duration_ms !== null) {
      // Weighted by the hour's runs (every counted run of a past hour has finished).
      ms += h.mean_duration_ms * h.runs;
      timed += h.runs;
    }
  }
  return {
    records: stats.hours.map((h) => ({ label: label(h.start), value: h.records })),
    durations: stats.hours.map((h) => ({ label: label(h.start), value: h.mean_duration_ms ?? 0 })),
    runs,
    failed,
    meanMs: timed ? Math.round(ms / timed) : null,
  };
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
  const stats = useAsync(() => api.runStats(24), []);
  return (
    <section>
      <h1>Overview</h1>
      <Show a={health} what="health">
        {(h) => <HealthPanel h={h} />}
      </Show>
      <section aria-labelledby="h-24h">
        <h2 id="h-24h">Last 24 hours</h2>
        <Show a={stats} what="run statistics">
          {(st) => {
            const { records, durations, runs, failed, meanMs } = hourly(st);
            return (
              <>
                <p>
                  {runs} runs, {failed} failed, mean duration {fmtMs(meanMs)}
                  {st.truncated ? " (the oldest runs were not counted)" : ""}. <Link to="runs">All runs</Link>
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
