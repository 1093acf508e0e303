import { useState, type FormEvent } from "react";
import { api, type WebhookSecretView } from "../api";
import { ConfirmButton, ErrorBox, Show, useAction, useAsync } from "../ui";

const SCHEMES = ["standard-webhooks", "github", "stripe", "slack", "svix", "shopify", "hubspot-v3", "twilio", "zoom", "intercom"];

/** A connection's webhook settings: set up, rotate the secret, end the rotation, remove. */
export function Webhook({ id }: { id: string }) {
  const hook = useAsync(() => api.webhook(id), [id]);
  const act = useAction();
  const [scheme, setScheme] = useState(SCHEMES[0]);
  const [shown, setShown] = useState<WebhookSecretView | null>(null);
  const setUp = async (e: FormEvent) => {
    e.preventDefault();
    let r: WebhookSecretView | null = null;
    if (await act.run(async () => (r = await api.setWebhook(id, { scheme })))) {
      setShown(r);
      hook.reload();
    }
  };
  return (
    <section aria-labelledby="h-webhook">
      <h2 id="h-webhook">Webhooks</h2>
      <Show a={hook} what="webhook settings">
        {(w) =>
          !w.configured ? (
            <form onSubmit={setUp} className="inline-form" aria-label="Set up webhooks">
              <label>
                Signature scheme
                <select value={scheme} onChange={(e) => setScheme(e.target.value)}>
                  {SCHEMES.map((s) => (
                    <option key={s}>{s}</option>
                  ))}
                </select>
              </label>
              <button type="submit" disabled={act.busy}>
                Set up webhooks
              </button>
            </form>
          ) : (
            <>
              <dl className="facts">
                <dt>Scheme</dt>
                <dd>{w.scheme}</dd>
                <dt>Endpoint</dt>
                <dd>
                  <code>POST {w.url_path}</code>
                </dd>
                <dt>Active secrets</dt>
                <dd>{w.active_secrets === 1 ? "1" : `${w.active_secrets} (rotation in progress: the previous secret still verifies)`}</dd>
              </dl>
              <div className="actions">
                <button
                  type="button"
                  disabled={act.busy}
                  onClick={async () => {
                    let r: WebhookSecretView | null = null;
                    if (await act.run(async () => (r = await api.rotateWebhook(id)))) {
                      setShown(r);
                      hook.reload();
                    }
                  }}
                >
                  Rotate secret
                </button>
                {w.active_secrets > 1 && (
                  <button
                    type="button"
                    disabled={act.busy}
                    onClick={async () => {
                      if (await act.run(() => api.dropPreviousSecret(id))) {
                        setShown(null);
                        hook.reload();
                      }
                    }}
                  >
                    End rotation
                  </button>
                )}
                <ConfirmButton
                  label="Remove webhooks"
                  danger
                  confirm="Deliveries will be refused."
                  onConfirm={async () => {
                    if (await act.run(() => api.removeWebhook(id))) {
                      setShown(null);
                      hook.reload();
                    }
                  }}
                />
              </div>
            </>
          )
        }
      </Show>
      {shown?.secret && (
        <div className="created" role="status">
          <p>New signing secret — give it to the provider now; it is shown only once. The receiver uses it within seconds.</p>
          <code className="secret" data-testid="webhook-secret">
            {shown.secret}
          </code>
        </div>
      )}
      {act.error && <ErrorBox error={act.error} />}
    </section>
  );
}
