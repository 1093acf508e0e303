import { useState, type FormEvent } from "react";
import { api, type ProviderView } from "../api";
import { Link, useLoc } from "../router";
import { Empty, ErrorBox, Show, useAction, useAsync } from "../ui";

function Form({ p }: { p: ProviderView }) {
  const { go } = useLoc();
  const act = useAction();
  const [id, setId] = useState("");
  const [tenant, setTenant] = useState("");
  const [baseUrl, setBaseUrl] = useState("");
  const [interval, setInterval] = useState("300");
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const ok = await act.run(() =>
      api.createConnection({
        id: id.trim(),
        tenant: tenant.trim(),
        provider: p.name,
        base_url: baseUrl.trim() || null,
        interval_secs: Number(interval),
      }),
    );
    if (ok) go(`connections/${encodeURIComponent(id.trim())}`);
  };
  return (
    <form onSubmit={submit} className="stack-form" aria-label={`Connect ${p.display_name ?? p.name}`}>
      <h2>Connect {p.display_name ?? p.name}</h2>
      <p className="note">
        Objects: {p.objects.map((o) => o.name).join(", ") || "none"}. Authorization: {p.auth}.
      </p>
      <label>
        Connection id
        <input value={id} onChange={(e) => setId(e.target.value)} required maxLength={128} placeholder="acme-crm" />
      </label>
      <label>
        Tenant
        <input value={tenant} onChange={(e) => setTenant(e.target.value)} required placeholder="acme" />
      </label>
      <label>
        Base URL (optional)
        <input value={baseUrl} onChange={(e) => setBaseUrl(e.target.value)} placeholder="connector default" />
      </label>
      <label>
        Seconds between pulls
        <input type="number" min={1} value={interval} onChange={(e) => setInterval(e.target.value)} required />
      </label>
      <button type="submit" disabled={act.busy}>
        Create connection
      </button>
      {act.error && <ErrorBox error={act.error} />}
    </form>
  );
}

/** The catalog, then the connection's details. */
export function AddConnection() {
  const catalog = useAsync(() => api.providers(), []);
  const [picked, setPicked] = useState<string | null>(null);
  return (
    <section>
      <p>
        <Link to="connections">← Connections</Link>
      </p>
      <h1>Add a connection</h1>
      <Show a={catalog} what="catalog">
        {(c) =>
          c.providers.length === 0 ? (
            <Empty>No connectors are installed.</Empty>
          ) : (
            <>
              <ul className="catalog">
                {c.providers.map((p) => (
                  <li key={p.name}>
                    <button type="button" aria-pressed={picked === p.name} onClick={() => setPicked(p.name)}>
                      <strong>{p.display_name ?? p.name}</strong>
                      <span className="note"> {p.objects.length} objects</span>
                    </button>
                  </li>
                ))}
              </ul>
              {picked && <Form p={c.providers.find((p) => p.name === picked)!} key={picked} />}
            </>
          )
        }
      </Show>
    </section>
  );
}
