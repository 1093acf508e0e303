import { useEffect, useState, type FormEvent } from "react";
import { api, ApiError, setCsrf, type SessionView } from "./api";
import { Link, Router, useLoc } from "./router";
import { ErrorBox, Loading } from "./ui";
import { Overview } from "./pages/Overview";
import { Connections } from "./pages/Connections";
import { ConnectionDetail } from "./pages/ConnectionDetail";
import { Runs, RunDetail } from "./pages/Runs";
import { Quarantine } from "./pages/Quarantine";
import { ApiKeys } from "./pages/ApiKeys";
import { AddConnection } from "./pages/AddConnection";
import { Notifications } from "./pages/Notifications";

const NAV: [string, string][] = [
  ["", "Overview"],
  ["connections", "Connections"],
  ["runs", "Runs"],
  ["quarantine", "Quarantine"],
  ["notifications", "Notifications"],
  ["api-keys", "API keys"],
];

export function SignIn({ onSession, error: initial }: { onSession: (s: SessionView) => void; error?: Error }) {
  const [key, setKey] = useState("");
  const [error, setError] = useState<Error | undefined>(initial);
  const [busy, setBusy] = useState(false);
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    setBusy(true);
    setError(undefined);
    try {
      onSession(await api.signIn({ api_key: key.trim() }));
    } catch (err) {
      setError(err instanceof Error ? err : new Error(String(err)));
    } finally {
      setBusy(false);
    }
  };
  return (
    <main className="signin">
      <h1>syncbridge</h1>
      <form onSubmit={submit} aria-label="Sign in">
        <p>Sign in with an API key, or open the one-time link <code>syncbridge up</code> prints.</p>
        <label htmlFor="api-key">API key</label>
        <input id="api-key" type="password" autoComplete="off" value={key} onChange={(e) => setKey(e.target.value)} placeholder="sbk_…" required />
        <button type="submit" disabled={busy || !key.trim()}>
          {busy ? "Signing in…" : "Sign in"}
        </button>
        {error && <ErrorBox error={error} />}
      </form>
    </main>
  );
}

function Page() {
  const { path } = useLoc();
  const parts = path.split("/").map(decodeURIComponent);
  switch (parts[0]) {
    case "":
      return <Overview />;
    case "connections":
      return parts[1] ? <ConnectionDetail id={parts[1]} /> : <Connections />;
    case "add-connection":
      return <AddConnection />;
    case "runs":
      return parts[1] ? <RunDetail id={parts[1]} /> : <Runs />;
    case "quarantine":
      return <Quarantine />;
    case "notifications":
      return <Notifications />;
    case "api-keys":
      return <ApiKeys />;
    default:
      return (
        <section>
          <h1>Not found</h1>
          <p>
            Nothing here. <Link to="">Back to the overview</Link>.
          </p>
        </section>
      );
  }
}

function Shell({ session, onSignOut }: { session: SessionView; onSignOut: () => void }) {
  const { path } = useLoc();
  const top = path.split("/")[0];
  return (
    <div className="shell">
      <a className="skip" href="#main">
        Skip to content
      </a>
      <header>
        <span className="brand">syncbridge</span>
        <nav aria-label="Main">
          <ul>
            {NAV.map(([to, label]) => (
              <li key={to}>
                <Link to={to} ariaCurrent={top === to}>
                  {label}
                </Link>
              </li>
            ))}
          </ul>
        </nav>
        <span className="who">
          scope {session.scope}
          <button type="button" onClick={onSignOut}>
            Sign out
          </button>
        </span>
      </header>
      <main id="main" tabIndex={-1}>
        <Page />
      </main>
    </div>
  );
}

// A sign-in link is spent on first use; StrictMode runs effects twice in development.
const spent = new Map<string, Promise<SessionView>>();

function Authed() {
  const { search, path, go } = useLoc();
  const [session, setSession] = useState<SessionView | null | undefined>(undefined);
  const [error, setError] = useState<Error>();
  const accept = (s: SessionView | null) => {
    setCsrf(s?.csrf_token ?? null);
    setSession(s);
  };
  useEffect(() => {
    const login = search.get("login");
    if (login && !spent.has(login)) spent.set(login, api.signIn({ login_token: login }).finally(() => go(path, true)));
    const start = login ? spent.get(login)! : api.session();
    start.then(accept, (e: unknown) => {
      if (!(e instanceof ApiError && e.status === 401) || login) setError(e instanceof Error ? e : new Error(String(e)));
      accept(null);
    });
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, []);
  if (session === undefined) return <Loading what="session" />;
  if (session === null) return <SignIn onSession={accept} error={error} />;
  const signOut = async () => {
    try {
      await api.signOut();
    } finally {
      accept(null);
    }
  };
  return <Shell session={session} onSignOut={signOut} />;
}

export function App() {
  return (
    <Router>
      <Authed />
    </Router>
  );
}
