// The dashboard end to end in Debian's chromium against `syncbridge up` and
// the sandbox: sign in with the one-time link `up` prints, every page passes
// axe-core (no serious or critical violation) at 1280 px and phone width,
// add a connection and watch its first sync finish on the page, add one
// through the connect flow (Approve and Deny on the sandbox's consent page),
// resolve a parked conflict on the Conflicts page and see the record
// pushed, set a field's conflict policy on the connection page and see the
// next push keep our value with nothing parked, edit the notification
// rules, reconnect a connection whose grant was revoked, create an
// API key (shown once) and revoke it, and see it refused. Each test saves a
// screenshot under target/ui-artifacts/.
import { after, before, describe, it } from "node:test";
import assert from "node:assert/strict";
import { createHmac, randomUUID } from "node:crypto";
import { ARTIFACTS, checkA11y, shot, startStack } from "./harness.mjs";

/** A Standard Webhooks delivery of `body` signed with `secret` (whsec_…). */
function standardWebhook(secret, body) {
  const id = `msg_${randomUUID()}`;
  const ts = Math.floor(Date.now() / 1000);
  const key = Buffer.from(secret.replace(/^whsec_/, ""), "base64");
  const sig = createHmac("sha256", key).update(`${id}.${ts}.${body}`).digest("base64");
  return { "webhook-id": id, "webhook-timestamp": String(ts), "webhook-signature": `v1,${sig}`, "content-type": "application/json" };
}

/** A GitHub-style delivery of `body` signed with `secret`. */
function githubWebhook(secret, body) {
  const sig = createHmac("sha256", secret).update(body).digest("hex");
  return { "x-hub-signature-256": `sha256=${sig}`, "x-github-delivery": randomUUID(), "content-type": "application/json" };
}

let stack;
let context;
let page;

/** Calls the API with a new admin key named `name`: `{ status, body }`. */
function adminApi(name) {
  const admin = stack.cli("api-keys", "create", "--name", name, "--scope", "admin").trim();
  return async (method, path, body) => {
    const r = await fetch(`${stack.api}${path}`, {
      method,
      headers: { Authorization: `Bearer ${admin}`, "content-type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
    const text = await r.text();
    return { status: r.status, body: text ? JSON.parse(text) : null };
  };
}

async function poll(what, probe, ms = 90_000) {
  const end = Date.now() + ms;
  for (;;) {
    const v = await probe();
    if (v) return v;
    if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

/** A new sandbox connection `conn` syncing contacts, after its first sync: one of its contacts. */
async function syncedContact(call, conn) {
  const created = await call("POST", "/connections", { id: conn, tenant: "acme", provider: "sandbox", base_url: stack.sandboxUrl, interval_secs: 3600, objects: ["contacts"] });
  assert.equal(created.status, 201, JSON.stringify(created.body));
  // Its first sync brings the sandbox's contacts in.
  const record = await poll("the first sync's contacts", async () => {
    const r = await call("GET", `/records?connection_id=${conn}&object=contacts&limit=1`);
    return r.status === 200 && r.body.records[0];
  });
  const id = record.id;
  const remotePhone = async () => {
    const r = await fetch(`${stack.sandboxUrl}/crm/v3/objects/contacts/${encodeURIComponent(id)}?properties=phone`);
    assert.equal(r.status, 200);
    return (await r.json()).properties.phone;
  };
  return { id, recordPath: `/connections/${conn}/objects/contacts/records/${encodeURIComponent(id)}`, remotePhone };
}

/** Someone changes the contact's phone at the provider, then the product changes it too. */
async function changePhoneOnBothSides(call, id, recordPath, { theirs, ours }) {
  const edited = await fetch(`${stack.sandboxUrl}/crm/v3/objects/contacts/${encodeURIComponent(id)}`, {
    method: "PATCH",
    headers: { "content-type": "application/json" },
    body: JSON.stringify({ properties: { phone: theirs } }),
  });
  assert.equal(edited.status, 200, await edited.text());
  const patched = await call("PATCH", recordPath, { fields: { phone: ours } });
  assert.equal(patched.status, 202, JSON.stringify(patched.body));
}

before(async () => {
  stack = await startStack();
  context = await stack.browser.newContext({ viewport: { width: 1280, height: 900 } });
  page = await context.newPage();
});

after(async () => {
  await context?.close();
  await stack?.close();
});

const PAGES = [
  ["", "Overview"],
  ["connections", "Connections"],
  ["add-connection", "Add a connection"],
  ["runs", "Runs"],
  ["conflicts", "Conflicts"],
  ["quarantine", "Quarantine"],
  ["notifications", "Notifications"],
  ["api-keys", "API keys"],
];

describe("dashboard", () => {
  it("signs in with the one-time link, which works once; a bad key is refused", async () => {
    await page.goto(stack.link);
    await page.getByRole("heading", { name: "Overview" }).waitFor();
    assert.ok(!page.url().includes("login="), "the link leaves the address bar");
    const cookies = await context.cookies();
    const session = cookies.find((c) => c.name === "sb_session");
    assert.ok(session, "session cookie set");
    assert.equal(session.httpOnly, true);
    assert.equal(session.sameSite, "Strict");
    assert.equal(session.path, "/api");
    await shot(page, "overview");

    // The link is spent: a fresh browser gets the sign-in form and an error.
    const other = await stack.browser.newContext();
    const p2 = await other.newPage();
    await p2.goto(stack.link);
    await p2.getByRole("alert").waitFor();
    await p2.getByLabel("API key").fill("sbk_not_a_key");
    await p2.getByRole("button", { name: "Sign in" }).click();
    await p2.getByText("a valid API key is required").waitFor();
    await checkA11y(p2, "sign-in");
    await other.close();
  });

  it("every page passes axe at 1280 px and at phone width", async () => {
    for (const width of [1280, 390]) {
      await page.setViewportSize({ width, height: width === 1280 ? 900 : 844 });
      for (const [path, heading] of PAGES) {
        await page.goto(stack.dashboard + path);
        await page.getByRole("heading", { name: heading, level: 1 }).waitFor();
        await page.locator(".loading").first().waitFor({ state: "detached", timeout: 10_000 }).catch(() => {});
        await checkA11y(page, `${path || "overview"} at ${width} px`);
      }
    }
    await shot(page, "phone-api-keys");
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("adds a connection and watches its first sync finish", async () => {
    await page.goto(stack.dashboard + "connections");
    await page.getByText("No connections yet.").waitFor();
    await page.getByRole("link", { name: "Add connection" }).click();
    await page.getByRole("button", { name: /Sandbox|sandbox/ }).first().click();
    await page.getByLabel("Connection id").fill("acme-crm");
    await page.getByLabel("Tenant").fill("acme");
    await page.getByLabel("Base URL (optional)").fill(stack.sandboxUrl);
    await page.getByLabel("Seconds between pulls").fill("3600");
    await checkA11y(page, "add connection form");
    await page.getByRole("button", { name: "Create connection" }).click();
    await page.getByRole("heading", { name: "Connection acme-crm" }).waitFor();
    await page.getByRole("button", { name: "Sync now" }).click();
    await page.getByText("Sync requested").waitFor();
    // The page refreshes its runs: wait for the first to succeed.
    const runs = page.getByRole("region", { name: "Runs" });
    await runs.getByText("succeeded").first().waitFor({ timeout: 90_000 });
    await checkA11y(page, "connection detail");
    await shot(page, "connection-synced");
    // It is listed, active, and its run is on the Runs page.
    await page.goto(stack.dashboard + "connections");
    await page.getByRole("link", { name: "acme-crm" }).waitFor();
    await page.goto(stack.dashboard + "runs");
    await page.getByRole("region", { name: "Runs" }).getByText("succeeded").first().waitFor();
  });

  it("connects through the provider's consent page: Approve lands on the new connection and its first sync finishes; Deny stores nothing", async () => {
    const ids = async () => {
      const r = await page.request.get(`${stack.api}/connections?limit=500`);
      assert.equal(r.status(), 200);
      return (await r.json()).connections.map((c) => c.id).sort();
    };
    const start = async (tenant) => {
      await page.goto(stack.dashboard + "add-connection");
      await page.getByRole("button", { name: /Sandbox|sandbox/ }).first().click();
      await page.getByLabel("Tenant").fill(tenant);
      await page.getByLabel("Base URL (optional)").fill(stack.sandboxUrl);
      await page.getByRole("button", { name: /^Connect through/ }).click();
      // The sandbox's consent page (the provider's authorize URL).
      await page.getByRole("button", { name: "Approve" }).waitFor();
      assert.ok(page.url().startsWith(stack.sandboxUrl + "/oauth/authorize"), page.url());
    };

    const before = await ids();
    await start("initech");
    await shot(page, "connect-consent");
    await page.getByRole("button", { name: "Deny" }).click();
    await page.waitForURL(/\/api\/v1\/admin\/add-connection\?error=/);
    await page.getByText(/did not authorize the connection \(access_denied\); nothing was stored/).waitFor();
    await checkA11y(page, "add connection, denied");
    assert.deepEqual(await ids(), before, "a denied flow stores no connection");

    await start("globex");
    await page.getByRole("button", { name: "Approve" }).click();
    await page.waitForURL(/\/api\/v1\/admin\/connections\/[^/?]+$/);
    const id = decodeURIComponent(new URL(page.url()).pathname.split("/").pop());
    await page.getByRole("heading", { name: `Connection ${id}` }).waitFor();
    assert.deepEqual(await ids(), [...before, id].sort(), "the approved flow stored one connection");
    // Nobody clicks Sync now: the new connection's first sync runs by itself.
    const runs = page.getByRole("region", { name: "Runs" });
    await runs.getByText("succeeded").first().waitFor({ timeout: 90_000 });
    await checkA11y(page, "connected connection");
    await shot(page, "connect-approved-synced");
  });

  it("creates an API key shown once, revokes it, and the API refuses it", async () => {
    await page.goto(stack.dashboard + "api-keys");
    await page.getByLabel("Name").fill("e2e-reader");
    await page.getByLabel("Scope").selectOption("read");
    await page.getByRole("button", { name: "Create key" }).click();
    const key = (await page.getByTestId("new-key").textContent()).trim();
    assert.match(key, /^sbk_/);
    const ok = await fetch(`${stack.api}/connections`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(ok.status, 200);
    await page.getByRole("button", { name: "Revoke e2e-reader" }).click();
    await page.getByRole("button", { name: "Yes, revoke e2e-reader" }).click();
    await page.getByRole("button", { name: "Revoke e2e-reader" }).waitFor({ state: "detached" });
    await shot(page, "api-key-revoked");
    const refused = await fetch(`${stack.api}/connections`, { headers: { Authorization: `Bearer ${key}` } });
    assert.equal(refused.status, 401);
    // The key text is not on the page after a reload.
    await page.reload();
    await page.getByRole("heading", { name: "API keys" }).waitFor();
    assert.equal(await page.getByText(key).count(), 0);
  });

  it("rotates a webhook secret: both verify during the rotation, only the new one after", async () => {
    const deliver = async (secret) => {
      const body = JSON.stringify({ object: "contacts", id: randomUUID() });
      const r = await fetch(`${stack.base}/api/webhooks/acme-crm`, { method: "POST", headers: standardWebhook(secret, body), body });
      return r.status;
    };
    await page.goto(stack.dashboard + "connections/acme-crm");
    await page.getByLabel("Signature scheme").selectOption("standard-webhooks");
    await page.getByRole("button", { name: "Set up webhooks" }).click();
    const first = (await page.getByTestId("webhook-secret").textContent()).trim();
    assert.match(first, /^whsec_/);
    assert.ok((await deliver(first)) < 300, "the first secret verifies");
    await page.getByRole("button", { name: "Rotate secret" }).click();
    await page.getByText("rotation in progress", { exact: false }).waitFor();
    const second = (await page.getByTestId("webhook-secret").textContent()).trim();
    assert.notEqual(second, first);
    // The receiver caches a connection's settings for 2 s.
    await new Promise((r) => setTimeout(r, 2500));
    assert.ok((await deliver(first)) < 300, "the previous secret still verifies during the rotation");
    assert.ok((await deliver(second)) < 300, "the new secret verifies");
    await checkA11y(page, "webhook rotation");
    await shot(page, "webhook-rotated");
    await page.getByRole("button", { name: "End rotation" }).click();
    await page.getByRole("button", { name: "End rotation" }).waitFor({ state: "detached" });
    await new Promise((r) => setTimeout(r, 2500));
    assert.equal(await deliver(first), 401, "the old secret is refused after the rotation");
    assert.ok((await deliver(second)) < 300);
  });

  it("replays a quarantined webhook event once its object is synced", async () => {
    const admin = stack.cli("api-keys", "create", "--name", "e2e-admin", "--scope", "admin").trim();
    const call = (method, path, body) =>
      fetch(`${stack.api}${path}`, {
        method,
        headers: { Authorization: `Bearer ${admin}`, "content-type": "application/json" },
        body: body === undefined ? undefined : JSON.stringify(body),
      });
    const create = (objects) => call("POST", "/connections", { id: "acme-hooks", tenant: "acme", provider: "sandbox", base_url: stack.sandboxUrl, interval_secs: 3600, objects });
    assert.equal((await create(["contacts"])).status, 201);
    assert.equal((await call("PUT", "/connections/acme-hooks/webhook", { scheme: "github", secret: "e2e-hook-secret" })).status, 200);
    // An event about companies, which this connection does not sync: set aside.
    const body = JSON.stringify({ object: "companies", id: "c-42" });
    const sent = await fetch(`${stack.base}/api/webhooks/acme-hooks`, { method: "POST", headers: githubWebhook("e2e-hook-secret", body), body });
    assert.ok(sent.status < 300, `delivery answered ${sent.status}`);
    // The operator adds the object (the connection again, with every object).
    assert.equal((await call("DELETE", "/connections/acme-hooks")).status, 204);
    assert.equal((await create(undefined)).status, 201);
    assert.equal((await call("PUT", "/connections/acme-hooks/webhook", { scheme: "github", secret: "e2e-hook-secret" })).status, 200);

    await page.goto(stack.dashboard + "quarantine");
    const inspect = page.getByRole("button", { name: /^Inspect / }).first();
    await inspect.click();
    await page.getByText('"object":"companies"').waitFor();
    await checkA11y(page, "quarantine entry");
    await shot(page, "quarantine-entry");
    await page.getByRole("button", { name: "Replay" }).click();
    await page.getByText(/replayed: routed to 1 job/).waitFor();
    await page.getByText("Nothing is quarantined.").waitFor();
    const entries = (await (await call("GET", "/quarantine")).json()).entries;
    assert.deepEqual(entries, [], "the replayed entry left quarantine");
  });

  it("resolve a parked conflict and see the record pushed", async () => {
    const call = adminApi("e2e-conflicts");
    // A connection with the default conflict policy (manual for every field).
    const conn = "acme-conflicts";
    const { id, recordPath, remotePhone } = await syncedContact(call, conn);
    // Someone changes the phone at the provider, then the product changes it too.
    await changePhoneOnBothSides(call, id, recordPath, { theirs: "+1 555 0101 theirs", ours: "+1 555 0102 ours" });
    // The push finds both sides changed: parked for a person.
    const parked = await poll("the conflict to be parked", async () => {
      const s = await call("GET", `${recordPath}/status`);
      return s.body?.status === "conflict" && s.body;
    });
    assert.deepEqual(parked.conflicts, ["phone"]);
    assert.equal(await remotePhone(), "+1 555 0101 theirs", "a parked conflict pushes nothing");

    // The operator types a value for the field on the Conflicts page.
    await page.goto(stack.dashboard + "conflicts");
    const label = `${conn} contacts ${id}`;
    const panel = page.getByRole("region", { name: `Conflict on ${label}`, exact: true });
    await panel.waitFor();
    await panel.getByText('"+1 555 0102 ours"').waitFor();
    await panel.getByText('"+1 555 0101 theirs"').waitFor();
    await checkA11y(page, "conflicts with a parked record");
    await panel.getByLabel("Value for phone").fill("+1 555 0199 decided");
    await shot(page, "conflict-parked");
    await panel.getByRole("button", { name: "Save typed values" }).click();
    await page.getByText(`${label}: typed values saved; the record is pushed.`).waitFor();
    await panel.waitFor({ state: "detached" });

    // The record is pushed with the typed value, and the provider carries it.
    await poll("the record to be pushed", async () => (await call("GET", `${recordPath}/status`)).body?.status === "pushed");
    assert.equal(await remotePhone(), "+1 555 0199 decided");
    const listed = await call("GET", `/conflicts?connection_id=${conn}`);
    assert.deepEqual(listed.body.conflicts, [], "nothing is parked any more");
    // The decision is on the audit trail the page shows.
    const audit = page.getByRole("region", { name: `Audit trail of ${conn}`, exact: true });
    await audit.getByRole("cell", { name: id, exact: true }).first().waitFor();
    await checkA11y(page, "conflicts after resolving");
    await shot(page, "conflict-resolved");
  });

  it("edits the notification rules: add a rule, save, see it stored; a rule without a channel is refused and shown", async () => {
    const rules = async () => (await (await page.request.get(`${stack.api}/notifications`)).json());
    const first = await rules();
    assert.equal(first.configured, true, JSON.stringify(first));
    assert.equal(first.rules_source, "file");
    await page.goto(stack.dashboard + "notifications");
    await page.getByRole("heading", { name: "Notifications", level: 1 }).waitFor();
    await page.getByRole("group", { name: "Rule 1", exact: true }).waitFor();
    await page.getByRole("button", { name: "Add rule" }).click();
    const rule2 = page.getByRole("group", { name: "Rule 2", exact: true });
    await rule2.getByLabel("Tenant").fill("acme");
    await rule2.getByLabel("Minimum severity").selectOption("warning");
    await rule2.getByLabel(/^Kinds/).selectOption(["connection_needs_reauth", "conflict_parked"]);
    await rule2.getByRole("checkbox", { name: "oncall-teams" }).check();
    await rule2.getByRole("checkbox", { name: "ops-slack" }).uncheck();
    // The tenant's rule must come first to be reached.
    await page.getByRole("button", { name: "Move rule 2 up" }).click();
    await checkA11y(page, "notification rules being edited");
    await page.getByRole("button", { name: "Save rules" }).click();
    await page.getByText("Rules saved (version 1).").waitFor();
    const saved = await rules();
    assert.equal(saved.rules_source, "store");
    assert.deepEqual(saved.rules, [
      { tenant: "acme", kinds: ["connection_needs_reauth", "conflict_parked"], min_severity: "warning", channels: ["oncall-teams"] },
      { tenant: null, kinds: [], min_severity: "critical", channels: ["ops-slack"] },
    ]);
    await shot(page, "notification-rules-saved");
    // A rule with no channel: the API's 422 is shown, nothing is stored.
    await page.getByRole("group", { name: "Rule 1", exact: true }).getByRole("checkbox", { name: "oncall-teams" }).uncheck();
    await page.getByRole("button", { name: "Save rules" }).click();
    await page.getByRole("alert").getByText("rule 1 lists no channel").waitFor();
    await checkA11y(page, "notification rules refused");
    assert.equal((await rules()).rules_version, 1, "the refused save wrote nothing");
  });

  it("reconnects a connection whose grant was revoked: Reconnect, Approve, active again and a sync succeeds", async () => {
    const sandbox = (route, body) =>
      fetch(`${stack.sandboxUrl}/_sandbox/${route}`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
    const get = async (path) => {
      const r = await page.request.get(`${stack.api}${path}`);
      assert.equal(r.status(), 200, `${path}: ${r.status()}`);
      return r.json();
    };
    const until = async (what, probe, ms = 90_000) => {
      const end = Date.now() + ms;
      for (;;) {
        const v = await probe();
        if (v) return v;
        if (Date.now() > end) throw new Error(`timed out waiting for ${what}`);
        await new Promise((r) => setTimeout(r, 500));
      }
    };
    // The connection the connect flow made (tenant globex) holds the
    // sandbox's OAuth tokens. The sandbox starts without token checks (the
    // other connections here have none); it checks them for this test.
    const [conn] = (await get("/connections?tenant=globex")).connections;
    assert.ok(conn, "the connect test made a globex connection");
    assert.equal(conn.status, "active");
    assert.equal((await sandbox("config", { auth_enabled: true })).status, 200);
    try {
      // The customer uninstalls the app: every grant of the client dies.
      assert.equal((await sandbox("revoke", { client_id: "sbx_client_demo" })).status, 200);
      await page.goto(stack.dashboard + `connections/${encodeURIComponent(conn.id)}`);
      await page.getByRole("heading", { name: `Connection ${conn.id}` }).waitFor();
      await page.getByRole("button", { name: "Sync now" }).click();
      await page.getByText("Sync requested").waitFor();
      // The run is refused, the refresh too: the connection needs re-authorization.
      await until("the connection to need re-authorization", async () => (await get(`/connections/${encodeURIComponent(conn.id)}`)).status === "needs_reauth");
      await page.reload();
      const reconnect = page.getByRole("button", { name: "Reconnect" });
      await reconnect.waitFor();
      await checkA11y(page, "connection needing re-authorization");
      await shot(page, "reconnect-needed");
      const runsBefore = (await get(`/runs?connection_id=${encodeURIComponent(conn.id)}&limit=100`)).runs.map((r) => r.id);
      await reconnect.click();
      // The sandbox's consent page, then back to the connection's page.
      await page.getByRole("button", { name: "Approve" }).waitFor();
      assert.ok(page.url().startsWith(stack.sandboxUrl + "/oauth/authorize"), page.url());
      await page.getByRole("button", { name: "Approve" }).click();
      await page.waitForURL((u) => u.pathname.endsWith(`/admin/connections/${encodeURIComponent(conn.id)}`));
      await page.getByRole("heading", { name: `Connection ${conn.id}` }).waitFor();
      await page.getByRole("button", { name: "Reconnect" }).waitFor({ state: "detached" });
      assert.equal((await get(`/connections/${encodeURIComponent(conn.id)}`)).status, "active");
      await page.getByRole("button", { name: "Sync now" }).click();
      await page.getByText("Sync requested").waitFor();
      // A run after the reconnect succeeds with the new grant.
      const run = await until("a run after the reconnect to succeed", async () => {
        const runs = (await get(`/runs?connection_id=${encodeURIComponent(conn.id)}&limit=100`)).runs;
        return runs.find((r) => !runsBefore.includes(r.id) && r.status === "succeeded");
      });
      await page.getByRole("region", { name: "Runs" }).getByText("succeeded").first().waitFor();
      assert.equal(run.status, "succeeded");
      await checkA11y(page, "connection reconnected");
      await shot(page, "reconnected-synced");
    } finally {
      await sandbox("config", { auth_enabled: false });
    }
  });

  it("a field's conflict policy set on the connection page decides the next push: ours is pushed, nothing parked", async () => {
    const call = adminApi("e2e-policies");
    const conn = "acme-policies";
    const { id, recordPath, remotePhone } = await syncedContact(call, conn);

    // The operator sets contacts.phone to target_wins (ours wins) on the connection page.
    await page.goto(stack.dashboard + `connections/${conn}`);
    const section = page.getByRole("region", { name: "Conflict policies" });
    await section.getByRole("button", { name: "Add field override to contacts" }).click();
    await section.getByLabel("Field of contacts override 1").selectOption("phone");
    await section.getByLabel("Policy for contacts.phone").selectOption("target_wins");
    await section.getByRole("button", { name: "Save policies" }).click();
    await section.getByText("Saved: the next push of a record resolves under these policies.").waitFor();
    const stored = await call("GET", `/connections/${conn}`);
    assert.deepEqual(stored.body.conflicts, { objects: { contacts: { fields: { phone: "target_wins" } } } });
    await checkA11y(page, "conflict policies saved");
    await shot(page, "conflict-policies");

    // The same change on both sides that the default (manual) parks in the test above.
    await changePhoneOnBothSides(call, id, recordPath, { theirs: "+1 555 0201 theirs", ours: "+1 555 0202 ours" });
    const done = await poll("the record to be pushed", async () => {
      const s = await call("GET", `${recordPath}/status`);
      return ["pushed", "conflict"].includes(s.body?.status) && s.body;
    });
    assert.equal(done.status, "pushed", `pushed under target_wins, not parked: ${JSON.stringify(done)}`);
    assert.equal(await remotePhone(), "+1 555 0202 ours", "the provider carries our value");
    const listed = await call("GET", `/conflicts?connection_id=${conn}`);
    assert.deepEqual(listed.body.conflicts, [], "nothing parked");

    // Another field changed meanwhile (the base URL): the page's save still goes through, as the
    // policies it started from are the stored ones.
    await section.getByLabel("Connection-wide policy").selectOption("latest");
    assert.equal((await call("PATCH", `/connections/${conn}`, { base_url: stack.sandboxUrl })).status, 200);
    await section.getByRole("button", { name: "Save policies" }).click();
    await poll("the connection-wide policy saved", async () => (await call("GET", `/connections/${conn}`)).body.conflicts.policy === "latest");

    // The policies changed elsewhere meanwhile: the page's save is refused (412) and says so.
    await page.reload();
    await section.getByLabel("Connection-wide policy").selectOption("source_wins");
    const elsewhere = { policy: "manual", objects: { contacts: { fields: { phone: "target_wins" } } } };
    assert.equal((await call("PATCH", `/connections/${conn}`, { conflicts: elsewhere })).status, 200);
    await section.getByRole("button", { name: "Save policies" }).click();
    await section.getByText("Changed elsewhere").waitFor();
    assert.deepEqual((await call("GET", `/connections/${conn}`)).body.conflicts, elsewhere, "nothing overwritten");
    await checkA11y(page, "conflict policies changed elsewhere");
    await section.getByRole("button", { name: "Reload policies" }).click();
    await section.getByText("Changed elsewhere").waitFor({ state: "detached" });
    assert.equal(await section.getByLabel("Connection-wide policy").inputValue(), "manual");

    // Phone width: the rows wrap, still no serious or critical axe violation.
    await page.setViewportSize({ width: 390, height: 844 });
    await checkA11y(page, "conflict policies at 390 px");
    await section.screenshot({ path: `${ARTIFACTS}/conflict-policies-phone.png` });
    await page.setViewportSize({ width: 1280, height: 900 });
  });

  it("a change without the CSRF token is refused; signing out ends the session", async () => {
    const cookie = (await context.cookies()).find((c) => c.name === "sb_session");
    const headers = { Cookie: `sb_session=${cookie.value}`, "Content-Type": "application/json" };
    const forged = await fetch(`${stack.api}/connections/acme-crm/pause`, { method: "POST", headers });
    assert.equal(forged.status, 403);
    assert.equal((await forged.json()).type, "urn:syncbridge:problem:csrf");
    await page.goto(stack.dashboard);
    await page.getByRole("figure").first().waitFor();
    await page.getByText(/runs, \d+ failed/).waitFor();
    await shot(page, "overview-with-runs");
    await page.getByRole("button", { name: "Sign out" }).click();
    await page.getByLabel("API key").waitFor();
    const after = await fetch(`${stack.api}/connections`, { headers });
    assert.equal(after.status, 401);
  });
});
