import { useState, type FormEvent } from "react";
import { api, type CreatedKey, type Scope } from "../api";
import { ConfirmButton, Empty, ErrorBox, Show, StatusBadge, TableWrap, useAction, useAsync, when } from "../ui";

export function ApiKeys() {
  const keys = useAsync(() => api.apiKeys(), []);
  const act = useAction();
  const [name, setName] = useState("");
  const [scope, setScope] = useState<Scope>("read");
  const [made, setMade] = useState<CreatedKey | null>(null);
  const create = async (e: FormEvent) => {
    e.preventDefault();
    setMade(null);
    let k: CreatedKey | null = null;
    if (await act.run(async () => (k = await api.createKey({ name: name.trim(), scope })))) {
      setMade(k);
      setName("");
      keys.reload();
    }
  };
  return (
    <section>
      <h1>API keys</h1>
      <form onSubmit={create} className="inline-form" aria-label="Create an API key">
        <label>
          Name
          <input value={name} onChange={(e) => setName(e.target.value)} required maxLength={200} />
        </label>
        <label>
          Scope
          <select value={scope} onChange={(e) => setScope(e.target.value as Scope)}>
            <option value="read">read</option>
            <option value="write">write</option>
            <option value="admin">admin</option>
          </select>
        </label>
        <button type="submit" disabled={act.busy || !name.trim()}>
          Create key
        </button>
      </form>
      {act.error && <ErrorBox error={act.error} />}
      {made && (
        <div className="created" role="status">
          <p>
            Key <strong>{made.name}</strong> created. Copy it now: it is shown only once.
          </p>
          <code className="secret" data-testid="new-key">
            {made.key}
          </code>
        </div>
      )}
      <Show a={keys} what="API keys">
        {(k) =>
          k.keys.length === 0 ? (
            <Empty>No API keys yet.</Empty>
          ) : (
            <TableWrap label="API keys">
              <thead>
                <tr>
                  <th scope="col">Name</th>
                  <th scope="col">Id</th>
                  <th scope="col">Scope</th>
                  <th scope="col">Created</th>
                  <th scope="col">State</th>
                  <th scope="col">
                    <span className="sr-only">Actions</span>
                  </th>
                </tr>
              </thead>
              <tbody>
                {k.keys.map((key) => (
                  <tr key={key.id}>
                    <td>{key.name}</td>
                    <td>
                      <code>{key.id}</code>
                    </td>
                    <td>{key.scope}</td>
                    <td>{when(key.created_at)}</td>
                    <td>{key.revoked_at ? <StatusBadge status={`revoked ${when(key.revoked_at)}`} /> : <StatusBadge status="active" />}</td>
                    <td>
                      {!key.revoked_at && (
                        <ConfirmButton
                          label={`Revoke ${key.name}`}
                          danger
                          confirm="It stops working at once."
                          onConfirm={async () => {
                            if (await act.run(() => api.revokeKey(key.id))) keys.reload();
                          }}
                        />
                      )}
                    </td>
                  </tr>
                ))}
              </tbody>
            </TableWrap>
          )
        }
      </Show>
    </section>
  );
}
