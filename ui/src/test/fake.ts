// A fake of the Product API for component tests: routes by method and path,
// records every call (with its headers), answers JSON or a problem document.
import { vi } from "vitest";

export interface Call {
  method: string;
  path: string;
  query: URLSearchParams;
  headers: Record<string, string>;
  body: unknown;
}

type Handler = (c: Call) => { status?: number; body?: unknown; headers?: Record<string, string> } | undefined;

export function fakeApi(routes: Record<string, Handler>) {
  const calls: Call[] = [];
  const fetchMock = vi.fn(async (input: RequestInfo | URL, init?: RequestInit) => {
    const u = new URL(String(input), "http://localhost");
    const method = init?.method ?? "GET";
    const path = u.pathname.replace(/^\/api\/v1/, "");
    const call: Call = {
      method,
      path,
      query: u.searchParams,
      headers: (init?.headers ?? {}) as Record<string, string>,
      body: init?.body ? JSON.parse(String(init.body)) : undefined,
    };
    calls.push(call);
    const h = routes[`${method} ${path}`];
    const r = h ? h(call) : { status: 404, body: { type: "urn:syncbridge:problem:no-route", title: "No such route", status: 404, detail: path } };
    const status = r?.status ?? 200;
    const text = r?.body === undefined ? "" : JSON.stringify(r.body);
    return new Response(status === 204 ? null : text, { status, headers: { "content-type": "application/json", ...r?.headers } });
  });
  vi.stubGlobal("fetch", fetchMock);
  return { calls };
}

export const SESSION = { csrf_token: "c".repeat(64), scope: "admin", expires_at: "2026-12-07T23:00:00Z" };

export function problem(status: number, title: string, detail: string) {
  return { status, body: { type: "urn:syncbridge:problem:x", title, status, detail } };
}
