// The end-to-end harness: the real `syncbridge up` (the local Functions host
// with the five handlers and sync-api) on a temp data dir, the sandbox CRM
// provider binary, and Debian's chromium driven by playwright-core. Needs
// the debug binaries (cargo build --workspace --bins) with the dashboard
// built in (scripts/ui before cargo build).
import { spawn, execFileSync } from "node:child_process";
import { mkdtempSync, mkdirSync, rmSync, writeFileSync } from "node:fs";
import { createServer } from "node:net";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import assert from "node:assert/strict";
import { chromium } from "playwright-core";
import AxeBuilder from "@axe-core/playwright";

export const ROOT = resolve(import.meta.dirname, "../..");
export const BIN = join(ROOT, "target/debug");
export const ARTIFACTS = join(ROOT, "target/ui-artifacts");
export const CHROMIUM = "/usr/bin/chromium";

export function freePort() {
  return new Promise((ok, fail) => {
    const s = createServer();
    s.unref();
    s.on("error", fail);
    s.listen(0, "127.0.0.1", () => {
      const { port } = s.address();
      s.close(() => ok(port));
    });
  });
}

/** Waits until `lines` (a growing array) has a line matching `re`. */
async function waitForLine(proc, lines, re, what, ms = 60_000) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const hit = lines.find((l) => re.test(l));
    if (hit) return hit;
    if (proc.exitCode !== null) throw new Error(`${what} exited (${proc.exitCode}):\n${lines.join("\n")}`);
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what}: no line matching ${re} within ${ms} ms:\n${lines.join("\n")}`);
}

function start(cmd, args, env, what) {
  const proc = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ["pipe", "pipe", "pipe"] });
  const lines = [];
  for (const s of [proc.stdout, proc.stderr]) {
    let buf = "";
    s.on("data", (d) => {
      buf += d.toString();
      const parts = buf.split("\n");
      buf = parts.pop();
      lines.push(...parts);
    });
  }
  return { proc, lines, what };
}

async function stop(p) {
  if (!p || p.proc.exitCode !== null) return;
  const done = new Promise((r) => p.proc.once("exit", r));
  p.proc.kill("SIGTERM");
  const t = setTimeout(() => p.proc.kill("SIGKILL"), 10_000);
  await done;
  clearTimeout(t);
}

/** The sandbox, `syncbridge up` and a browser; `close()` stops them all. */
export async function startStack({ records = 40 } = {}) {
  mkdirSync(ARTIFACTS, { recursive: true });
  const dataDir = mkdtempSync(join(tmpdir(), "syncbridge-ui-e2e-"));
  // A notification config (channels only reachable nowhere: nothing here
  // waits for a delivery), so the Notifications page has rules to edit.
  const notifyConfig = join(dataDir, "notify.toml");
  writeFileSync(
    notifyConfig,
    [
      "[[channels]]",
      'name = "ops-slack"',
      'type = "slack"',
      'url = "http://127.0.0.1:9/slack"',
      "[[channels]]",
      'name = "oncall-teams"',
      'type = "teams"',
      'url = "http://127.0.0.1:9/teams"',
      "[[rules]]",
      'min_severity = "critical"',
      'channels = ["ops-slack"]',
      "",
    ].join("\n"),
  );
  const sandboxPort = await freePort();
  const sandbox = start(join(BIN, "syncbridge-sandbox"), ["--port", String(sandboxPort), "--records", String(records), "--no-auth"], {}, "sandbox");
  const upPort = await freePort();
  const up = start(
    join(BIN, "syncbridge"),
    ["--data-dir", dataDir, "up", "--http-port", String(upPort), "--app-root", ROOT],
    // Scheduler every second, so "Sync now" starts a run at once.
    // The sandbox's OAuth client (its defaults), for the connect flow; `up`
    // accepts the dashboard's own pages as return URLs.
    {
      SYNC_SCHEDULER_SCHEDULE: "*/1 * * * * *",
      SYNCBRIDGE_NOTIFY_CONFIG: notifyConfig,
      TOKEN_REFRESHER_SCHEDULE: "0 0 0 1 1 *",
      SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_ID: "sbx_client_demo",
      SYNCBRIDGE_OAUTH_SANDBOX_CLIENT_SECRET: "sbx_cs_demo_secret",
    },
    "syncbridge up",
  );
  let browser;
  try {
    const link = (await waitForLine(up.proc, up.lines, /^dashboard: http.*\?login=sbl_/, "syncbridge up")).split(/\s+/)[1];
    await waitForLine(sandbox.proc, sandbox.lines, /127\.0\.0\.1/, "sandbox", 30_000).catch(() => {});
    browser = await chromium.launch({ executablePath: CHROMIUM, headless: true, args: ["--no-sandbox"] });
    const base = `http://127.0.0.1:${upPort}`;
    return {
      base,
      api: `${base}/api/v1`,
      dashboard: `${base}/api/v1/admin/`,
      link,
      dataDir,
      sandboxUrl: `http://127.0.0.1:${sandboxPort}`,
      browser,
      up,
      cli: (...args) => execFileSync(join(BIN, "syncbridge"), ["--data-dir", dataDir, ...args], { encoding: "utf8" }),
      async close() {
        await browser?.close();
        await stop(up);
        await stop(sandbox);
        rmSync(dataDir, { recursive: true, force: true });
      },
    };
  } catch (e) {
    await browser?.close();
    await stop(up);
    await stop(sandbox);
    throw e;
  }
}

/** axe-core on the page as it is: no serious or critical violation. */
export async function checkA11y(page, where) {
  const result = await new AxeBuilder({ page }).analyze();
  const bad = result.violations.filter((v) => v.impact === "serious" || v.impact === "critical");
  assert.deepEqual(
    bad.map((v) => `${v.id} (${v.impact}): ${v.help} — ${v.nodes.map((n) => n.target.join(" ")).join(", ")}`),
    [],
    `accessibility violations on ${where}`,
  );
}

export async function shot(page, name) {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`), fullPage: true });
}
