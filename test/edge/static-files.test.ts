/**
 * The app's read-only files (edge/static-files.ts) through `app.request()`: /model/<file> serves
 * model.json and exactly the files it lists, whatever the request's path says; /app serves the
 * browser page's files and nothing else; revalidation by ETag; and none of it is in the API
 * document.
 */
import { describe, expect, test } from "bun:test";
import { createApp, type EdgeAppOptions } from "../../edge/app.ts";
import { BROWSER_FILES } from "../../edge/browser/files.ts";
import { sha256Hex } from "../../shared/model/package.ts";
import { type AssetSource, memoryAssets } from "../../shared/retrieval/assets.ts";
import { FakeEngine } from "./fake-engine.ts";

const enc = new TextEncoder();
const WEIGHTS = new Uint8Array([1, 2, 3, 4]);
const SECRET = enc.encode("not a model file");

/** A model.json listing one real shard and, as a hostile export could, a path out of the folder. */
async function modelJson(): Promise<Uint8Array> {
  const files = {
    "weights-00.bin": { bytes: WEIGHTS.length, sha256: await sha256Hex(WEIGHTS) },
    "../secret.txt": { bytes: SECRET.length, sha256: await sha256Hex(SECRET) },
    "gone.bin": { bytes: 1, sha256: "0".repeat(64) },
  };
  return enc.encode(JSON.stringify({ format: "pc2-tfjs-model", files }));
}

/** An AssetSource that records every path it is asked for. */
function spy(files: Record<string, Uint8Array>): AssetSource & { asked: string[] } {
  const inner = memoryAssets(files);
  const asked: string[] = [];
  return { asked, get: (path) => (asked.push(path), inner.get(path)) };
}

async function modelApp(extra: Record<string, Uint8Array> = {}, options: Partial<EdgeAppOptions> = {}) {
  const json = await modelJson();
  const assets = spy({ "model.json": json, "weights-00.bin": WEIGHTS, "secret.txt": SECRET, ...extra });
  const app = createApp({ engine: new FakeEngine(), modelAssets: assets, log: () => {}, ...options });
  return { app, assets, json };
}

async function errorOf(res: Response): Promise<{ status: number; message: string }> {
  return ((await res.json()) as { error: { status: number; message: string } }).error;
}

describe("GET /model/<file>", () => {
  test("model.json and a file it lists, with their types and SHA-256 ETags", async () => {
    const { app, json } = await modelApp();
    const m = await app.request("/model/model.json");
    expect(m.status).toBe(200);
    expect(m.headers.get("content-type")).toBe("application/json");
    expect(m.headers.get("etag")).toBe(`"${await sha256Hex(json)}"`);
    expect(Array.from(new Uint8Array(await m.arrayBuffer()))).toEqual(Array.from(json));
    const w = await app.request("/model/weights-00.bin");
    expect(w.status).toBe(200);
    expect(w.headers.get("content-type")).toBe("application/octet-stream");
    expect(w.headers.get("etag")).toBe(`"${await sha256Hex(WEIGHTS)}"`);
    expect(w.headers.get("cache-control")).toBe("no-cache");
    expect(new Uint8Array(await w.arrayBuffer())).toEqual(WEIGHTS);
  });

  test("a current ETag is a 304 without reading the file", async () => {
    const { app, assets } = await modelApp();
    const etag = `"${await sha256Hex(WEIGHTS)}"`;
    await app.request("/model/model.json"); // the listing is read once
    assets.asked.length = 0;
    const res = await app.request("/model/weights-00.bin", { headers: { "If-None-Match": `W/"other", ${etag}` } });
    expect(res.status).toBe(304);
    expect(assets.asked).toEqual([]);
    const stale = await app.request("/model/weights-00.bin", { headers: { "If-None-Match": '"other"' } });
    expect(stale.status).toBe(200);
  });

  test("names off the list are 404 and never reach the AssetSource, however they are spelled", async () => {
    const { app, assets } = await modelApp();
    const paths = [
      "/model/secret.txt",
      "/model/..%2Fsecret.txt",
      "/model/%2e%2e%2fsecret.txt",
      "/model/..%5Csecret.txt",
      "/model/weights-00.bin%00",
      "/model/%2Fetc%2Fpasswd",
      "/model/.",
      "/model/model.json%2F..%2Fsecret.txt",
    ];
    for (const path of paths) {
      const res = await app.request(path);
      expect({ path, status: res.status }).toEqual({ path, status: 404 });
    }
    // The listing ("../secret.txt" is on it) names a file outside: it is not served either.
    expect(assets.asked.filter((p) => p !== "model.json")).toEqual([]);
    // Dot segments in the URL itself are resolved before routing: no route, no read.
    expect((await app.request("/model/../secret.txt")).status).toBe(404);
    expect(assets.asked.filter((p) => p !== "model.json")).toEqual([]);
  });

  test("a listed file that is missing is a 503; no model.json a 404; a broken one a 503", async () => {
    const { app } = await modelApp();
    expect((await errorOf(await app.request("/model/gone.bin"))).status).toBe(503);
    const none = createApp({ engine: new FakeEngine(), modelAssets: memoryAssets({}) });
    expect(await errorOf(await none.request("/model/model.json"))).toEqual({ status: 404, message: "this server has no model files" });
    const broken = createApp({ engine: new FakeEngine(), modelAssets: memoryAssets({ "model.json": enc.encode("{not json") }), log: () => {} });
    expect((await errorOf(await broken.request("/model/weights-00.bin"))).status).toBe(503);
  });

  test("without modelAssets there is no /model/", async () => {
    const app = createApp({ engine: new FakeEngine() });
    expect(await errorOf(await app.request("/model/model.json"))).toEqual({ status: 404, message: "this server does not serve its model files" });
  });
});

describe("GET /app", () => {
  const PAGE = enc.encode("<!doctype html><title>page</title>");
  const SCRIPT = enc.encode("console.log(1)");
  const pageApp = () => {
    const assets = spy({ [BROWSER_FILES.page]: PAGE, [BROWSER_FILES.script]: SCRIPT, "secret.txt": SECRET });
    return { app: createApp({ engine: new FakeEngine(), browserAssets: assets }), assets };
  };

  test("the page, with a security policy that allows WebAssembly and nothing from elsewhere", async () => {
    const res = await pageApp().app.request("/app");
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/html; charset=utf-8");
    const csp = res.headers.get("content-security-policy")!;
    expect(csp).toContain("script-src 'self' 'wasm-unsafe-eval'");
    expect(csp).toContain("default-src 'self'");
    expect(new Uint8Array(await res.arrayBuffer())).toEqual(PAGE);
  });

  test("its script; a name off the list is 404 and not read", async () => {
    const { app, assets } = pageApp();
    const js = await app.request(`/app/${BROWSER_FILES.script}`);
    expect(js.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(await js.text()).toBe("console.log(1)");
    for (const path of ["/app/secret.txt", "/app/..%2Fsecret.txt", "/app/main.js.map"]) expect((await app.request(path)).status).toBe(404);
    expect(assets.asked).toEqual([BROWSER_FILES.script]);
    // A listed file the build did not make is a 404 that says so.
    expect((await errorOf(await app.request(`/app/${BROWSER_FILES.bmm}`))).message).toContain("is missing");
  });

  test("/app/ and /app/index.html go to /app, query kept (the page's URLs are relative to it)", async () => {
    const { app } = pageApp();
    for (const [from, to] of [
      ["/app/", "/app"],
      ["/app/?backend=wasm", "/app?backend=wasm"],
      [`/app/${BROWSER_FILES.page}`, "/app"],
    ]) {
      const res = await app.request(from!);
      expect({ from, status: res.status, location: res.headers.get("location") }).toEqual({ from, status: 301, location: to! });
    }
  });

  test("without browserAssets /app is a 404 that says the page is not built", async () => {
    const app = createApp({ engine: new FakeEngine() });
    expect(await errorOf(await app.request("/app"))).toEqual({ status: 404, message: "the browser page is not built into this server" });
  });
});

test("the static routes are not in /openapi.json", async () => {
  const { app } = await modelApp({}, { browserAssets: memoryAssets({}) });
  const doc = (await (await app.request("/openapi.json")).json()) as { paths: Record<string, unknown> };
  expect(Object.keys(doc.paths).filter((p) => p.startsWith("/model") || p.startsWith("/app"))).toEqual([]);
});
