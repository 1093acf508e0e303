import { useEffect, useState, type FormEvent } from "react";
import { api, startConnect, type ProviderView } from "../api";
import { Link, useLoc } from "../router";
import { Empty, ErrorBox, Show, useAction, useAsync } from "../ui";

function Form({ p }: { p: ProviderView }) {
  const { go } = useLoc();
  const act = useAction();
  const [id, setId] = useState("");
  const [tenant, setTenant] = useState("");
  const [baseUrl, setBaseUrl] = useState("");
  const [interval, setInterval] = useState("300");
  const [tenantMissing, setTenantMissing] = useState(false);
  const wanted = p.settings ?? [];
  const [settings, setSettings] = useState<Record<string, string>>(() =>
    Object.fromEntries(wanted.map((s) => [s.name, s.default ?? ""])),
  );
  // Sent only for providers that declare settings; trimmed, as the ids are.
  const given = () =>
    wanted.length === 0 ? {} : { settings: Object.fromEntries(Object.entries(settings).map(([k, v]) => [k, v.trim()])) };
  const submit = async (e: FormEvent) => {
    e.preventDefault();
    const ok = await act.run(() =>
      api.createConnection({
        id: id.trim(),
        tenant: tenant.trim(),
        provider: p.name,
        base_url: baseUrl.trim() || null,
        interval_secs: Number(interval),
        ...given(),
      }),
    );
    if (ok) go(`connections/${encodeURIComponent(id.trim())}`);
  };
  // The connect flow: the customer authorizes at the provider, which sends
  // the browser back here with ?connection_id= or ?error=.
  const connect = async () => {
    if (!tenant.trim()) {
      setTenantMissing(true);
      return;
    }
    setTenantMissing(false);
    await act.run(() =>
      startConnect({
        tenant: tenant.trim(),
        provider: p.name,
        base_url: baseUrl.trim() || null,
        return_page: "add-connection",
        ...given(),
      }),
    );
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
        <input value={tenant} onChange={(e) => setTenant(e.target.value)} required placeholder="acme" aria-invalid={tenantMissing} />
      </label>
      {tenantMissing && <p className="error" role="alert">A tenant is needed to connect.</p>}
      {wanted.length > 0 && (
        <fieldset>
          <legend>{p.display_name ?? p.name} settings</legend>
          {wanted.map((s) => (
            <div key={s.name} className="setting">
              <label>
                {s.label}
                {s.default != null && " (optional)"}
                <input
                  name={s.name}
                  value={settings[s.name] ?? ""}
                  onChange={(e) => setSettings({ ...settings, [s.name]: e.target.value })}
                  required={s.default == null}
                  placeholder={s.example ?? undefined}
                  aria-describedby={s.description ? `setting-${s.name}-help` : undefined}
                />
              </label>
              {s.description && (
                <p className="note" id={`setting-${s.name}-help`}>
                  {s.description}
                </p>
              )}
            </div>
          ))}
        </fieldset>
      )}
      <label>
        Base URL (optional)
        <input value={baseUrl} onChange={(e) => setBaseUrl(e.target.value)} placeholder="connector default" />
      </label>
      <label>
        Seconds between pulls
        <input type="number" min={1} value={interval} onChange={(e) => setInterval(e.target.value)} required />
      </label>
      <div className="actions">
        <button type="button" disabled={act.busy} onClick={connect}>
          Connect through {p.display_name ?? p.name}
        </button>
        <button type="submit" disabled={act.busy}>
          Create connection
        </button>
      </div>
      <p className="note">
        Connect sends you to the provider to authorize (connection id and interval are then chosen for you); Create
        makes the connection with the credentials configured on the server.
      </p>
      {act.error && <ErrorBox error={act.error} />}
    </form>
  );
}

/** The catalog, then the connection's details. */
export function AddConnection() {
  const catalog = useAsync(() => api.providers(), []);
  const [picked, setPicked] = useState<string | null>(null);
  const { search, go } = useLoc();
  const connected = search.get("connection_id");
  const refused = search.get("error");
  useEffect(() => {
    // Back from the provider, authorized: the new connection's page.
    if (connected) go(`connections/${encodeURIComponent(connected)}`, true);
  }, [connected]);
  return (
    <section>
      <p>
        <Link to="connections">← Connections</Link>
      </p>
      <h1>Add a connection</h1>
      {refused && (
        <div className="error" role="alert">
          <strong>Not connected</strong>
          <p>
            The provider did not authorize the connection ({refused}); nothing was stored. Pick the provider again to
            retry.
          </p>
        </div>
      )}
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
