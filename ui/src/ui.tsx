// Shared pieces: data loading, empty/loading/error states, tables, charts.
import { useCallback, useEffect, useRef, useState, type ReactNode } from "react";
import { ApiError } from "./api";

export interface Async<T> {
  data: T | undefined;
  error: Error | undefined;
  loading: boolean;
  reload: () => void;
}

/** Runs `load` when `deps` change; `reload` runs it again. */
export function useAsync<T>(load: () => Promise<T>, deps: unknown[]): Async<T> {
  const [data, setData] = useState<T>();
  const [error, setError] = useState<Error>();
  const [loading, setLoading] = useState(true);
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    const mine = ++seq.current;
    setLoading(true);
    setError(undefined);
    load().then(
      (d) => {
        if (mine === seq.current) {
          setData(d);
          setLoading(false);
        }
      },
      (e: unknown) => {
        if (mine === seq.current) {
          setError(e instanceof Error ? e : new Error(String(e)));
          setLoading(false);
        }
      },
    );
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { data, error, loading, reload };
}

/** Calls `f` every `ms` while the page is shown. */
export function useEvery(ms: number, f: () => void): void {
  const ref = useRef(f);
  ref.current = f;
  useEffect(() => {
    const t = window.setInterval(() => {
      if (document.visibilityState !== "hidden") ref.current();
    }, ms);
    return () => window.clearInterval(t);
  }, [ms]);
}

export function Loading({ what }: { what: string }) {
  return (
    <p className="loading" role="status">
      Loading {what}…
    </p>
  );
}

export function ErrorBox({ error, retry }: { error: Error; retry?: () => void }) {
  const detail = error instanceof ApiError && error.problem ? error.problem.detail : error.message;
  const title = error instanceof ApiError && error.problem ? error.problem.title : "Something went wrong";
  return (
    <div className="error" role="alert">
      <strong>{title}</strong>
      <p>{detail}</p>
      {retry && (
        <button type="button" onClick={retry}>
          Try again
        </button>
      )}
    </div>
  );
}

export function Empty({ children }: { children: ReactNode }) {
  return <p className="empty">{children}</p>;
}

/** Loading → error → content, for one async value. */
export function Show<T>({ a, what, children }: { a: Async<T>; what: string; children: (d: T) => ReactNode }) {
  if (a.error) return <ErrorBox error={a.error} retry={a.reload} />;
  if (a.data === undefined) return <Loading what={what} />;
  return <>{children(a.data)}</>;
}

/** A table that scrolls sideways on a narrow screen (and can be scrolled by keyboard). */
export function TableWrap({ label, children }: { label: string; children: ReactNode }) {
  return (
    <div className="table-wrap" role="region" aria-label={label} tabIndex={0}>
      <table>{children}</table>
    </div>
  );
}

export function StatusBadge({ status }: { status: string }) {
  const tone =
    status === "active" || status === "succeeded" || status === "ok"
      ? "good"
      : status === "failed" || status === "needs_reauth" || status === "degraded"
        ? "bad"
        : "neutral";
  return <span className={`badge ${tone}`}>{status.replace(/_/g, " ")}</span>;
}

export function when(t: string | null | undefined): string {
  if (!t) return "—";
  const d = new Date(t);
  return Number.isNaN(d.getTime()) ? t : d.toLocaleString();
}

export function durationMs(r: { started_at: string; finished_at: string | null }): number | null {
  if (!r.finished_at) return null;
  return Math.max(0, new Date(r.finished_at).getTime() - new Date(r.started_at).getTime());
}

export function fmtMs(ms: number | null): string {
  if (ms === null) return "—";
  if (ms < 1000) return `${ms} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(1)} s`;
  return `${(ms / 60_000).toFixed(1)} min`;
}

export interface Bar {
  label: string;
  value: number;
}

/** A bar chart in SVG, described for screen readers by its title and a hidden table. */
export function BarChart({ title, bars, unit }: { title: string; bars: Bar[]; unit: string }) {
  const w = 600;
  const h = 140;
  const max = Math.max(1, ...bars.map((b) => b.value));
  const bw = bars.length ? w / bars.length : w;
  const total = bars.reduce((s, b) => s + b.value, 0);
  return (
    <figure className="chart">
      <figcaption>{title}</figcaption>
      <svg viewBox={`0 0 ${w} ${h + 16}`} role="img" aria-label={`${title}: ${bars.length} buckets, total ${Math.round(total)} ${unit}`} preserveAspectRatio="none">
        {bars.map((b, i) => {
          const bh = (b.value / max) * h;
          return (
            <rect key={i} x={i * bw + 1} y={h - bh} width={Math.max(1, bw - 2)} height={bh} className="bar">
              <title>{`${b.label}: ${Math.round(b.value)} ${unit}`}</title>
            </rect>
          );
        })}
        <line x1="0" y1={h} x2={w} y2={h} className="axis" />
        {bars.length > 0 && (
          <>
            <text x="0" y={h + 13} className="tick">
              {bars[0].label}
            </text>
            <text x={w} y={h + 13} textAnchor="end" className="tick">
              {bars[bars.length - 1].label}
            </text>
          </>
        )}
      </svg>
      <p className="chart-max">max {Math.round(max)} {unit}</p>
    </figure>
  );
}

/** A button that asks before a destructive action. */
export function ConfirmButton({ label, confirm, onConfirm, danger }: { label: string; confirm: string; onConfirm: () => Promise<unknown> | void; danger?: boolean }) {
  const [asking, setAsking] = useState(false);
  const [busy, setBusy] = useState(false);
  if (!asking)
    return (
      <button type="button" className={danger ? "danger" : undefined} onClick={() => setAsking(true)}>
        {label}
      </button>
    );
  return (
    <span className="confirm" role="group" aria-label={`Confirm: ${label}`}>
      <span>{confirm}</span>
      <button
        type="button"
        className={danger ? "danger" : undefined}
        disabled={busy}
        autoFocus
        onClick={async () => {
          setBusy(true);
          try {
            await onConfirm();
          } finally {
            setBusy(false);
            setAsking(false);
          }
        }}
      >
        Yes, {label.toLowerCase()}
      </button>
      <button type="button" onClick={() => setAsking(false)}>
        Cancel
      </button>
    </span>
  );
}

/** Runs an action, reporting its error in place. */
export function useAction(): { error: Error | undefined; busy: boolean; run: (f: () => Promise<unknown>) => Promise<boolean>; clear: () => void } {
  const [error, setError] = useState<Error>();
  const [busy, setBusy] = useState(false);
  const run = async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await f();
      return true;
    } catch (e) {
      setError(e instanceof Error ? e : new Error(String(e)));
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { error, busy, run, clear: () => setError(undefined) };
}

/** Keyset paging: the current page's cursor and the cursors of the pages before it, for "Previous". */
export interface Pages {
  cursor: string | null;
  number: number;
  previous: (() => void) | null;
  next: (nextCursor: string | null) => (() => void) | null;
  reset: () => void;
}

export function usePages(): Pages {
  const [stack, setStack] = useState<(string | null)[]>([]);
  const [cursor, setCursor] = useState<string | null>(null);
  return {
    cursor,
    number: stack.length + 1,
    previous:
      stack.length === 0
        ? null
        : () => {
            setCursor(stack[stack.length - 1] ?? null);
            setStack(stack.slice(0, -1));
          },
    next: (nextCursor) =>
      nextCursor
        ? () => {
            setStack([...stack, cursor]);
            setCursor(nextCursor);
          }
        : null,
    reset: () => {
      setStack([]);
      setCursor(null);
    },
  };
}

/** Previous / page number / Next under a paged table. */
export function Pager({ pages, nextCursor }: { pages: Pages; nextCursor: string | null }) {
  const previous = pages.previous;
  const next = pages.next(nextCursor);
  return (
    <div className="pager">
      <button type="button" disabled={!previous} onClick={() => previous?.()}>
        Previous
      </button>
      <span>Page {pages.number}</span>
      <button type="button" disabled={!next} onClick={() => next?.()}>
        Next
      </button>
    </div>
  );
}
