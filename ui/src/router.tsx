// A small history router: the dashboard lives under Vite's base
// (/api/v1/admin/); the server answers index.html for every path below it.
import { createContext, useContext, useEffect, useState, type ReactNode, type MouseEvent } from "react";

export const BASE = import.meta.env.BASE_URL.replace(/\/$/, "");

function current(): string {
  const p = window.location.pathname;
  const rel = p.startsWith(BASE) ? p.slice(BASE.length) : p;
  return rel.replace(/^\/+/, "").replace(/\/+$/, "");
}

interface Loc {
  path: string;
  search: URLSearchParams;
  go: (to: string, replace?: boolean) => void;
}

const LocCtx = createContext<Loc>({ path: "", search: new URLSearchParams(), go: () => {} });

export function Router({ children }: { children: ReactNode }) {
  const [state, setState] = useState({ path: current(), search: window.location.search });
  useEffect(() => {
    const onPop = () => setState({ path: current(), search: window.location.search });
    window.addEventListener("popstate", onPop);
    return () => window.removeEventListener("popstate", onPop);
  }, []);
  const go = (to: string, replace = false) => {
    const full = `${BASE}/${to.replace(/^\//, "")}`;
    if (replace) window.history.replaceState(null, "", full);
    else window.history.pushState(null, "", full);
    setState({ path: current(), search: window.location.search });
    window.scrollTo?.(0, 0);
  };
  return <LocCtx.Provider value={{ path: state.path, search: new URLSearchParams(state.search), go }}>{children}</LocCtx.Provider>;
}

export function useLoc(): Loc {
  return useContext(LocCtx);
}

/** A link inside the dashboard: a real <a href> (keyboard, new tab), routed in place. */
export function Link({ to, children, className, ariaCurrent }: { to: string; children: ReactNode; className?: string; ariaCurrent?: boolean }) {
  const { go } = useLoc();
  const href = `${BASE}/${to.replace(/^\//, "")}`;
  const onClick = (e: MouseEvent<HTMLAnchorElement>) => {
    if (e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault();
    go(to);
  };
  return (
    <a href={href} onClick={onClick} className={className} aria-current={ariaCurrent ? "page" : undefined}>
      {children}
    </a>
  );
}
