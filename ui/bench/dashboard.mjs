// The dashboard's load times in Debian's chromium against a seeded API
// (started by `cargo run -p syncbridge-tests --bin bench-dashboard`, which
// passes the base URL and an admin key). Prints, for the Overview and the
// Connections page, the time from navigation to interactive (the page's
// data on screen) cold and warm, and the gzipped size of the built bundle.
import { readdirSync, readFileSync } from "node:fs";
import { join } from "node:path";
import { gzipSync } from "node:zlib";
import { chromium } from "playwright-core";

const base = process.argv[2];
const key = process.env.BENCH_API_KEY;
const dashboard = `${base}/api/v1/admin/`;
const WARM = 5;

function bundle() {
  const dir = join(import.meta.dirname, "../dist/assets");
  let raw = 0;
  let gz = 0;
  for (const f of readdirSync(dir)) {
    const b = readFileSync(join(dir, f));
    raw += b.length;
    gz += gzipSync(b, { level: 9 }).length;
  }
  return { raw, gz };
}

const browser = await chromium.launch({ executablePath: "/usr/bin/chromium", headless: true, args: ["--no-sandbox"] });
const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
const signed = await context.request.post(`${base}/api/v1/session`, { data: { api_key: key } });
if (signed.status() !== 201) throw new Error(`sign-in: ${signed.status()}`);
const page = await context.newPage();

/** Loads `path` and times each of `marks` (name → wait) from navigation. */
async function load(path, marks) {
  const t0 = performance.now();
  await page.goto(dashboard + path, { waitUntil: "commit" });
  const out = {};
  for (const [name, wait] of Object.entries(marks)) {
    await wait();
    out[name] = performance.now() - t0;
  }
  return out;
}

const pages = {
  overview: [
    "",
    {
      // Interactive: health, attention and navigation on screen.
      overview: () => page.getByRole("heading", { name: "Needs attention" }).waitFor({ timeout: 120_000 }),
      // The 24-hour charts, which load beside them.
      "overview charts": () => page.getByText(/runs, \d+ failed/).waitFor({ timeout: 120_000 }),
    },
  ],
  connections: ["connections", { connections: () => page.getByRole("link", { name: "conn-00000" }).waitFor({ timeout: 60_000 }) }],
};

const results = {};
for (const path of ["/health", "/run-stats?hours=24", "/connection-summaries?limit=50", "/connections?limit=50"]) {
  const t0 = performance.now();
  const r = await context.request.get(`${base}/api/v1${path}`);
  results[`api ${path}`] = { status: r.status(), ms: Math.round(performance.now() - t0) };
}
for (const [path, marks] of Object.values(pages)) {
  const cold = await load(path, marks);
  const warm = [];
  for (let i = 0; i < WARM; i++) warm.push(await load(path, marks));
  for (const name of Object.keys(marks)) {
    const w = warm.map((x) => x[name]).sort((a, b) => a - b);
    results[name] = { cold_ms: Math.round(cold[name]), warm_median_ms: Math.round(w[Math.floor(WARM / 2)]), warm_max_ms: Math.round(w[WARM - 1]) };
  }
}
await browser.close();
const b = bundle();
console.log(JSON.stringify({ ...results, bundle_bytes: b.raw, bundle_gzip_bytes: b.gz }, null, 2));
for (const [name, r] of Object.entries(results)) {
  if (name.startsWith("api ")) continue;
  console.log(`${name}: cold ${r.cold_ms} ms, warm median ${r.warm_median_ms} ms (max ${r.warm_max_ms} ms)`);
}
console.log(`bundle: ${(b.raw / 1024).toFixed(1)} KiB, gzipped ${(b.gz / 1024).toFixed(1)} KiB`);
