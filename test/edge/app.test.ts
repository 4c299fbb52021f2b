/**
 * The edge app through `app.request()` (no server), with the FakeEngine test double: every
 * endpoint's happy path, a table of hostile requests, OpenAPI, body limits, engine failures,
 * lazy loading and concurrency.
 */
import { describe, expect, test } from "bun:test";
import type { Hono } from "hono";
import { createApp, type EdgeAppOptions } from "../../edge/app.ts";
import { EngineInputError, MAX_QUERY_TOKENS, type RetrievalEngine } from "../../shared/retrieval/engine.ts";
import { DEFAULT_EDGE_LIMITS } from "../../edge/schemas.ts";
import { FakeEngine } from "./fake-engine.ts";

const JSON_TYPE = { "content-type": "application/json" };

function appWith(engine: RetrievalEngine = new FakeEngine(), options: Partial<EdgeAppOptions> = {}) {
  const logged: unknown[] = [];
  const app = createApp({ engine, log: (_m, e) => logged.push(e), ...options });
  return { app, engine, logged };
}

/** POST a body: strings are sent verbatim (malformed JSON, 1e400), anything else as JSON. */
function post(app: Hono, path: string, body: unknown, headers: Record<string, string> = JSON_TYPE) {
  return app.request(path, { method: "POST", headers, body: typeof body === "string" ? body : JSON.stringify(body) });
}

async function expectError(res: Response, status: number, contains: string) {
  expect(res.headers.get("content-type")).toContain("application/json");
  const body = (await res.json()) as { error: { status: number; message: string } };
  expect({ http: res.status, status: body.error.status }).toEqual({ http: status, status });
  expect(body.error.message).toContain(contains);
}

const FEATURES = [
  [1, 2, 3, 4],
  [0, 0, 0, 1],
  [-1, 0.5, 0, 0],
];

// --- happy paths ---------------------------------------------------------------------------

describe("happy paths", () => {
  test("GET /health says ok and that the engine is loaded", async () => {
    const res = await appWith().app.request("/health");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ status: "ok", engine: "loaded" });
  });

  test("GET /v1/model gives the ModelInfo and the input dimensions", async () => {
    const engine = new FakeEngine();
    const res = await appWith(engine).app.request("/v1/model");
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({ ...engine.info(), imgDim: 4, regions: 3, vocabSize: 50, maxTokens: 40 });
  });

  test("POST /v1/search/images by text, default k", async () => {
    const { app, engine } = appWith();
    const res = await post(app, "/v1/search/images", { text: "a dog runs" });
    expect(res.status).toBe(200);
    const { results } = (await res.json()) as { results: Array<{ index: number; score: number }> };
    expect(results).toHaveLength(DEFAULT_EDGE_LIMITS.defaultK);
    expect(results[0]).toEqual({ index: "a dog runs".length, score: 1 });
    expect(results.map((r) => r.score)).toEqual([...results.map((r) => r.score)].sort((a, b) => b - a));
    // The server's default shortlist (exhaustive), handed to the engine and reported back.
    expect((engine as FakeEngine).calls).toEqual([{ verb: "searchImages", args: [{ text: "a dog runs" }, 10, { shortlist: "all" }] }]);
  });

  test("POST /v1/search/images by tokens with k", async () => {
    const { app, engine } = appWith();
    const res = await post(app, "/v1/search/images", { tokens: [3, 4], k: 3 });
    expect(((await res.json()) as any).results.map((h: any) => h.index)).toEqual([7, 6, 8]);
    expect((engine as FakeEngine).calls[0]!.args).toEqual([{ tokens: [3, 4] }, 3, { shortlist: "all" }]);
  });

  test("a search's shortlist reaches the engine and the response says what was used", async () => {
    const { app, engine } = appWith();
    const two = (await (await post(app, "/v1/search/images", { tokens: [3, 4], k: 3, shortlist: 8 })).json()) as any;
    expect(two.shortlist).toEqual({ used: 8, stage: "tranglo", scored: 8 });
    expect((engine as FakeEngine).calls[0]!.args).toEqual([{ tokens: [3, 4] }, 3, { shortlist: 8 }]);
    // 0, "all" and a shortlist of the whole gallery (20 images) are all exhaustive.
    for (const shortlist of [0, "all", 20, 500]) {
      const body = (await (await post(app, "/v1/search/images", { tokens: [3, 4], k: 3, shortlist })).json()) as any;
      expect([shortlist, body.shortlist]).toEqual([shortlist, { used: "all", stage: null, scored: 20 }]);
    }
    const caps = (await (await post(app, "/v1/search/captions", { image: 7, k: 2, shortlist: 32 })).json()) as any;
    expect(caps.shortlist).toEqual({ used: 32, stage: "tranglo", scored: 32 });
  });

  test("the server's default shortlist applies to searches and evaluations that name none", async () => {
    const { app, engine } = appWith(new FakeEngine(), { limits: { defaultShortlist: 6 } });
    expect(((await (await post(app, "/v1/search/images", { text: "a" })).json()) as any).shortlist).toEqual({ used: 6, stage: "tranglo", scored: 6 });
    const evaluated = (await (await post(app, "/v1/eval", {})).json()) as any;
    expect(evaluated.twoStage).toMatchObject({ shortlist: 6, stage: "tranglo" });
    expect((engine as FakeEngine).calls.map((c) => c.args.at(-1))).toEqual([{ shortlist: 6 }, { limit: undefined, shortlist: 6 }]);
  });

  test("bad shortlist limits fail at start, naming the option", () => {
    expect(() => appWith(new FakeEngine(), { limits: { defaultShortlist: 2000 } })).toThrow('defaultShortlist must be "all" or an integer in [0, 1024] (maxShortlist), not 2000');
    expect(() => appWith(new FakeEngine(), { limits: { maxShortlist: -1 } })).toThrow("maxShortlist must be a non-negative integer, not -1");
  });

  test("POST /v1/search/captions by gallery image", async () => {
    const res = await post(appWith().app, "/v1/search/captions", { image: 7, k: 2 });
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      results: [
        { index: 7, score: 1, caption: "caption 7", image: 1 },
        { index: 6, score: 0.5, caption: "caption 6", image: 1 },
      ],
      shortlist: { used: "all", stage: null, scored: 100 },
    });
  });

  test("POST /v1/search/captions by features hands the engine a row-major Float32Array", async () => {
    const { app, engine } = appWith();
    const res = await post(app, "/v1/search/captions", { features: FEATURES, k: 1 });
    expect(res.status).toBe(200);
    const [q] = (engine as FakeEngine).calls[0]!.args as [{ features: Float32Array }];
    expect(q.features).toBeInstanceOf(Float32Array);
    expect(Array.from(q.features)).toEqual(FEATURES.flat());
  });

  test("POST /v1/score scores each pair in order", async () => {
    const res = await post(appWith().app, "/v1/score", {
      pairs: [
        { image: 2, text: "abc" },
        { features: FEATURES, tokens: [1, 2] },
      ],
    });
    expect(res.status).toBe(200);
    const sum = FEATURES.flat().reduce((a, b) => a + b, 0);
    expect(await res.json()).toEqual({ scores: [2 + 3, sum + 3] });
  });

  test("POST /v1/eval, all images or a limit, with or without a body", async () => {
    const { app } = appWith();
    const all = (await (await post(app, "/v1/eval", {})).json()) as any;
    expect(all).toMatchObject({ images: 20, captions: 100, rsum: 440 });
    expect(all.i2t).toEqual({ r1: 50, r5: 80, r10: 90, medr: 1, meanr: 2.5 });
    expect(await (await post(app, "/v1/eval", { limit: 5 })).json()).toMatchObject({ images: 5, captions: 25 });
    const bare = await app.request("/v1/eval", { method: "POST" });
    expect(bare.status).toBe(200);
    // One rule: an empty body with a JSON content type is {} as well, not "Malformed JSON".
    const empty = await app.request("/v1/eval", { method: "POST", body: "", headers: { "content-type": "application/json" } });
    expect(await empty.json()).toMatchObject({ images: 20, captions: 100 });
    expect(all.twoStage).toBeUndefined();
  });

  test("POST /v1/eval with a shortlist reports the exhaustive and the two-stage recall", async () => {
    const { app, engine } = appWith();
    const r = (await (await post(app, "/v1/eval", { limit: 5, shortlist: 16 })).json()) as any;
    expect(r).toMatchObject({ images: 5, rsum: 440, twoStage: { shortlist: 16, stage: "tranglo", rsum: 380 } });
    expect(r.twoStage.t2i).toEqual({ r1: 40, r5: 70, r10: 80, medr: 2, meanr: 5 });
    expect((engine as FakeEngine).calls[0]!.args).toEqual([{ limit: 5, shortlist: 16 }]);
    for (const shortlist of [0, "all"]) expect(((await (await post(app, "/v1/eval", { shortlist })).json()) as any).twoStage).toBeUndefined();
  });

  test("JSON media types with parameters or +json suffix are accepted", async () => {
    const { app } = appWith();
    for (const type of ["application/json; charset=utf-8", "Application/JSON", "application/vnd.pc2+json"]) {
      expect((await post(app, "/v1/search/images", { text: "a" }, { "content-type": type })).status).toBe(200);
    }
  });
});

// --- hostile requests ----------------------------------------------------------------------

type Row = [name: string, path: string, body: unknown, status: number, contains: string];

const many = (n: number, v: unknown) => Array.from({ length: n }, () => v);
const deep = (depth: number) => "[".repeat(depth) + "]".repeat(depth);
const row = (n: number) => Array.from({ length: n }, (_, i) => i / n);

const HOSTILE: Row[] = [
  // body shape and JSON
  ["malformed JSON", "/v1/search/images", "{", 400, "Malformed JSON"],
  ["trailing comma", "/v1/search/images", '{"text":"a",}', 400, "Malformed JSON"],
  ["empty body: {} (one rule with no body)", "/v1/search/images", "", 400, "body: give exactly one of text or tokens"],
  ["blank body: {}", "/v1/search/images", " \n ", 400, "body: give exactly one of text or tokens"],
  ["a JSON array body", "/v1/search/images", "[1,2]", 400, "body: the request body must be a JSON object"],
  ["a JSON string body", "/v1/eval", '"x"', 400, "body: the request body must be a JSON object"],
  ["limit negative names the real minimum", "/v1/eval", { limit: -5 }, 400, "limit: Invalid value: Expected >=1 but received -5"],
  ["body null", "/v1/search/images", "null", 400, "body"],
  ["body array", "/v1/search/images", "[]", 400, "body"],
  ["body string", "/v1/search/images", '"text"', 400, "body"],
  ["body number", "/v1/search/images", "42", 400, "body"],
  ["unknown key", "/v1/search/images", { text: "a", extra: 1 }, 400, "extra"],
  ["__proto__ key", "/v1/search/images", '{"text":"a","__proto__":{"k":5}}', 400, "__proto__"],
  ["deeply nested value", "/v1/search/images", `{"text":${deep(5000)}}`, 400, "text"],
  // search/images: text and tokens
  ["neither text nor tokens", "/v1/search/images", {}, 400, "exactly one of text or tokens"],
  ["both text and tokens", "/v1/search/images", { text: "a", tokens: [1] }, 400, "exactly one of text or tokens"],
  ["empty text", "/v1/search/images", { text: "" }, 400, "text"],
  ["blank text", "/v1/search/images", { text: " \n\t " }, 400, "text: text must contain a non-space"],
  ["text too long", "/v1/search/images", { text: "x".repeat(1001) }, 400, "text"],
  ["text number", "/v1/search/images", { text: 5 }, 400, "text"],
  ["text null", "/v1/search/images", { text: null }, 400, "text"],
  ["text array", "/v1/search/images", { text: ["a"] }, 400, "text"],
  ["empty tokens", "/v1/search/images", { tokens: [] }, 400, "tokens"],
  ["negative token", "/v1/search/images", { tokens: [1, -1] }, 400, "tokens[1]"],
  ["float token", "/v1/search/images", { tokens: [1.5] }, 400, "tokens[0]"],
  ["token = vocabSize", "/v1/search/images", { tokens: [2, 50] }, 400, "tokens[1]: 50 is not in [0, 50)"],
  ["huge token", "/v1/search/images", { tokens: [1e20] }, 400, "tokens[0]"],
  ["token 1e400 (Infinity)", "/v1/search/images", '{"tokens":[1e400]}', 400, "tokens[0]"],
  ["string token", "/v1/search/images", { tokens: ["1"] }, 400, "tokens[0]"],
  ["nested token", "/v1/search/images", { tokens: [[1]] }, 400, "tokens[0]"],
  ["tokens object", "/v1/search/images", { tokens: { 0: 1 } }, 400, "tokens"],
  ["too many tokens for the schema", "/v1/search/images", { tokens: many(MAX_QUERY_TOKENS + 1, 1) }, 400, "tokens"],
  // within the schema's cap, beyond the fake model's maxTokens (40): the app checks the engine's limit
  ["too many tokens for the model", "/v1/search/images", { tokens: many(41, 1) }, 400, "tokens: 41 ids; the model takes at most 40"],
  ["too many tokens for the model in a pair", "/v1/score", { pairs: [{ image: 0, tokens: many(100, 1) }] }, 400, "pairs[0].tokens: 100 ids; the model takes at most 40"],
  ["100k tokens", "/v1/search/images", { tokens: many(100_000, 1) }, 400, "tokens"],
  // k
  ["k = 0", "/v1/search/images", { text: "a", k: 0 }, 400, "k"],
  ["k negative", "/v1/search/images", { text: "a", k: -1 }, 400, "k"],
  ["k = 101", "/v1/search/images", { text: "a", k: 101 }, 400, "k"],
  ["k float", "/v1/search/images", { text: "a", k: 2.5 }, 400, "k"],
  ["k string", "/v1/search/images", { text: "a", k: "10" }, 400, "k"],
  ["k null", "/v1/search/images", { text: "a", k: null }, 400, "k"],
  ["k bool", "/v1/search/images", { text: "a", k: true }, 400, "k"],
  ["k 1e400", "/v1/search/images", '{"text":"a","k":1e400}', 400, "k"],
  ["k 1e300", "/v1/search/images", { text: "a", k: 1e300 }, 400, "k"],
  // search/captions: image and features
  ["neither image nor features", "/v1/search/captions", { k: 3 }, 400, "exactly one of image or features"],
  ["both image and features", "/v1/search/captions", { image: 0, features: FEATURES }, 400, "exactly one of image or features"],
  ["negative image", "/v1/search/captions", { image: -1 }, 400, "image"],
  ["image = gallery size", "/v1/search/captions", { image: 20 }, 400, "image: 20 is not in [0, 20)"],
  ["float image", "/v1/search/captions", { image: 1.5 }, 400, "image"],
  ["string image", "/v1/search/captions", { image: "0" }, 400, "image"],
  ["huge image", "/v1/search/captions", { image: 1e300 }, 400, "image"],
  ["too few rows", "/v1/search/captions", { features: FEATURES.slice(0, 2) }, 400, "features: has 2 rows"],
  ["short row", "/v1/search/captions", { features: [[1, 2, 3, 4], [1, 2, 3], [1, 2, 3, 4]] }, 400, "features[1]: has 3 values"],
  ["empty features", "/v1/search/captions", { features: [] }, 400, "features"],
  ["empty row", "/v1/search/captions", { features: [[]] }, 400, "features[0]"],
  ["flat features", "/v1/search/captions", { features: [1, 2, 3, 4] }, 400, "features[0]"],
  ["string value", "/v1/search/captions", { features: [[1, "2", 3, 4]] }, 400, "features[0][1]"],
  ["null value", "/v1/search/captions", { features: [[null, 2, 3, 4]] }, 400, "features[0][0]"],
  ["1e400 value", "/v1/search/captions", '{"features":[[1e400,1,1,1],[1,1,1,1],[1,1,1,1]]}', 400, "features[0][0]"],
  ["value beyond magnitude", "/v1/search/captions", { features: [[1, 2, 3, 1e7], [0, 0, 0, 0], [0, 0, 0, 0]] }, 400, "features[0][3]"],
  ["257 rows", "/v1/search/captions", { features: many(257, [1]) }, 400, "features"],
  ["4097 columns", "/v1/search/captions", { features: [row(4097)] }, 400, "features[0]"],
  // shortlist: "all" or an integer in [0, maxShortlist], on both searches and the evaluation
  ["shortlist negative", "/v1/search/images", { text: "a", shortlist: -1 }, 400, 'shortlist: -1 is not "all" or an integer in [0, 1024] (0 and "all": every item, exhaustive)'],
  ["shortlist float", "/v1/search/images", { text: "a", shortlist: 12.5 }, 400, 'shortlist: 12.5 is not "all" or an integer in [0, 1024]'],
  ["shortlist above the maximum", "/v1/search/images", { text: "a", shortlist: 1025 }, 400, "shortlist: 1025 is more than the server's maximum of 1024 (maxShortlist)"],
  ["shortlist 1e400 (Infinity)", "/v1/search/images", '{"text":"a","shortlist":1e400}', 400, 'shortlist: Infinity is not "all"'],
  ["shortlist other word", "/v1/search/captions", { image: 1, shortlist: "some" }, 400, 'shortlist: "some" is not "all" or an integer in [0, 1024]'],
  ["shortlist numeric string", "/v1/search/captions", { image: 1, shortlist: "128" }, 400, 'shortlist: "128" is not "all"'],
  ["shortlist null", "/v1/search/images", { text: "a", shortlist: null }, 400, "shortlist: null is not"],
  ["eval shortlist negative", "/v1/eval", { shortlist: -3 }, 400, 'shortlist: -3 is not "all" or an integer in [0, 1024]'],
  ["eval shortlist above the maximum", "/v1/eval", { limit: 5, shortlist: 5000 }, 400, "shortlist: 5000 is more than the server's maximum of 1024"],
  // score
  ["no pairs", "/v1/score", {}, 400, "pairs"],
  ["empty pairs", "/v1/score", { pairs: [] }, 400, "pairs"],
  ["pairs object", "/v1/score", { pairs: { image: 1, text: "a" } }, 400, "pairs"],
  ["257 pairs", "/v1/score", { pairs: many(257, { image: 0, text: "a" }) }, 400, "pairs"],
  ["null pair", "/v1/score", { pairs: [null] }, 400, "pairs[0]"],
  ["pair without text", "/v1/score", { pairs: [{ image: 1, text: "a" }, { image: 1 }] }, 400, "pairs[1]: give exactly one of text or tokens"],
  ["pair without image", "/v1/score", { pairs: [{ text: "a" }] }, 400, "pairs[0]: give exactly one of image or features"],
  ["pair image out of gallery", "/v1/score", { pairs: [{ image: 0, text: "a" }, { image: 99, text: "a" }] }, 400, "pairs[1].image"],
  ["pair token out of vocab", "/v1/score", { pairs: [{ image: 0, tokens: [0, 1, 77] }] }, 400, "pairs[0].tokens[2]"],
  ["pair features wrong shape", "/v1/score", { pairs: [{ features: [[1, 2]], text: "a" }] }, 400, "pairs[0].features"],
  ["pair unknown key", "/v1/score", { pairs: [{ image: 0, text: "a", caption: "x" }] }, 400, "pairs[0].caption"],
  // eval
  ["limit 0", "/v1/eval", { limit: 0 }, 400, "limit"],
  ["limit beyond gallery", "/v1/eval", { limit: 21 }, 400, "limit: 21 is more than the gallery's 20 images"],
  ["limit string", "/v1/eval", { limit: "5" }, 400, "limit"],
  ["eval unknown key", "/v1/eval", { images: 5 }, 400, "images"],
];

describe("hostile requests answer 4xx with the field named", () => {
  const { app } = appWith();
  test.each(HOSTILE)("%s", async (_name, path, body, status, contains) => {
    await expectError(await post(app, path, body), status, contains);
  });

  test("validation messages are bounded even when they echo the input", async () => {
    const res = await post(app, "/v1/search/images", { text: "a", k: "x".repeat(100_000) });
    const body = (await res.json()) as any;
    expect(res.status).toBe(400);
    expect(body.error.message.length).toBeLessThanOrEqual(301);
  });
});

describe("content types, routes, methods", () => {
  const { app } = appWith();
  test.each([
    ["text/plain", 415],
    ["application/x-www-form-urlencoded", 415],
    ["multipart/form-data; boundary=x", 415],
    ["", 415],
  ] as const)("Content-Type %p → %d", async (type, status) => {
    const headers: Record<string, string> = type === "" ? {} : { "content-type": type };
    const res = await app.request("/v1/search/images", { method: "POST", headers, body: '{"text":"a"}' });
    await expectError(res, status, "Content-Type must be application/json");
  });

  test.each([
    ["GET", "/nope"],
    ["POST", "/v1/nope"],
    ["GET", "/v1/score"],
    ["PUT", "/health"],
    ["DELETE", "/v1/model"],
  ])("%s %s → 404 JSON", async (method, path) => {
    await expectError(await app.request(path, { method }), 404, `no route ${method} ${path}`);
  });
});

describe("seeded fuzz: random JSON never yields a 5xx", () => {
  // mulberry32: small, seedable, good enough to shake the validators.
  function rng(seed: number) {
    return () => {
      seed = (seed + 0x6d2b79f5) | 0;
      let t = Math.imul(seed ^ (seed >>> 15), 1 | seed);
      t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t;
      return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
    };
  }
  const KEYS = ["text", "tokens", "k", "image", "features", "pairs", "limit", "__proto__", "constructor", ""];
  function value(r: () => number, depth: number): unknown {
    const pick = Math.floor(r() * (depth > 3 ? 6 : 9));
    switch (pick) {
      case 0: return null;
      case 1: return r() < 0.5;
      case 2: return [0, -1, 1.5, 1e308, -1e308, 2 ** 53, 49, 50, 99, 100, 101][Math.floor(r() * 11)];
      case 3: return Math.floor(r() * 200) - 50;
      case 4: return ["", " ", "a", "x".repeat(1001), "\u0000", "😀"][Math.floor(r() * 6)];
      case 5: return r() * 10;
      case 6: return Array.from({ length: Math.floor(r() * 5) }, () => value(r, depth + 1));
      default: {
        const o: Record<string, unknown> = {};
        for (let i = Math.floor(r() * 4); i > 0; i--) o[KEYS[Math.floor(r() * KEYS.length)]!] = value(r, depth + 1);
        return o;
      }
    }
  }
  const { app, logged } = appWith();
  for (const path of ["/v1/search/images", "/v1/search/captions", "/v1/score", "/v1/eval"]) {
    test(path, async () => {
      const r = rng(path.length * 7919);
      const statuses = new Set<number>();
      for (let i = 0; i < 300; i++) {
        const body = r() < 0.8 ? { ...(value(r, 0) as object) } : value(r, 0);
        const res = await post(app, path, body);
        statuses.add(res.status);
        expect(res.status).toBeLessThan(500);
        await res.arrayBuffer();
      }
      expect([...statuses].every((s) => s === 200 || s === 400)).toBe(true);
      expect(logged).toEqual([]);
    });
  }
});

// --- body size -----------------------------------------------------------------------------

describe("body size limit", () => {
  const LIMIT = DEFAULT_EDGE_LIMITS.bodyLimit;
  /** `{"text":"a"}` padded with spaces to `size` bytes: valid JSON of an exact size. */
  const padded = (size: number) => '{"text":"a"}' + " ".repeat(size - 12);

  test("a body of exactly the limit is accepted; one byte more is 413", async () => {
    const { app } = appWith();
    expect((await post(app, "/v1/search/images", padded(LIMIT))).status).toBe(200);
    await expectError(await post(app, "/v1/search/images", padded(LIMIT + 1)), 413, `larger than ${LIMIT} bytes`);
  });

  test("Content-Length over the limit is refused before reading", async () => {
    const { app } = appWith();
    const res = await app.request("/v1/score", {
      method: "POST",
      headers: { ...JSON_TYPE, "content-length": String(LIMIT * 10) },
      body: "{}",
    });
    await expectError(res, 413, "larger than");
  });

  test("a streamed body without Content-Length is cut off at the limit", async () => {
    const { app } = appWith();
    let sent = 0;
    const chunk = new TextEncoder().encode(" ".repeat(64 * 1024));
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        if (sent > 4 * LIMIT) return controller.close(); // bounded, even if the limit failed
        sent += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const res = await app.request("/v1/search/images", { method: "POST", headers: JSON_TYPE, body: stream, duplex: "half" } as RequestInit);
    await expectError(res, 413, "larger than");
    expect(sent).toBeLessThanOrEqual(LIMIT + 2 * chunk.length);
  });

  test("the limit is an option", async () => {
    const { app } = appWith(new FakeEngine(), { limits: { bodyLimit: 64 } });
    expect((await post(app, "/v1/search/images", { text: "short" })).status).toBe(200);
    await expectError(await post(app, "/v1/search/images", { text: "x".repeat(100) }), 413, "larger than 64 bytes");
  });
});

// --- engine behaviour ----------------------------------------------------------------------

describe("engine failures and states", () => {
  test("an engine bug is a generic 500, logged, its message not leaked", async () => {
    const engine = new FakeEngine();
    engine.searchImages = async () => {
      throw new Error("secret internal detail");
    };
    const { app, logged } = appWith(engine);
    const res = await post(app, "/v1/search/images", { text: "a" });
    await expectError(res, 500, "internal error");
    expect(await (await post(app, "/v1/search/images", { text: "a" })).text()).not.toContain("secret");
    expect(logged).toHaveLength(2);
    expect((logged[0] as Error).message).toBe("secret internal detail");
  });

  test("EngineInputError is a 400 with the engine's message", async () => {
    const engine = new FakeEngine();
    engine.searchImages = async () => {
      throw new EngineInputError("text: no known word in 'zzzz'");
    };
    await expectError(await post(appWith(engine).app, "/v1/search/images", { text: "zzzz" }), 400, "no known word");
  });

  test("a model without a gallery: searches and eval are 409, scoring features works", async () => {
    const { app } = appWith(new FakeEngine({ withGallery: false }));
    await expectError(await post(app, "/v1/search/images", { text: "a" }), 409, "no gallery");
    await expectError(await post(app, "/v1/search/captions", { features: FEATURES }), 409, "no gallery");
    await expectError(await post(app, "/v1/score", { pairs: [{ image: 0, text: "a" }] }), 409, "no gallery");
    await expectError(await post(app, "/v1/eval", {}), 409, "no gallery");
    expect((await post(app, "/v1/score", { pairs: [{ features: FEATURES, text: "a" }] })).status).toBe(200);
  });

  test("createApp wants exactly one of engine and loadEngine", () => {
    expect(() => createApp({})).toThrow("exactly one of engine or loadEngine");
    expect(() => createApp({ engine: new FakeEngine(), loadEngine: async () => new FakeEngine() })).toThrow(
      "exactly one of engine or loadEngine",
    );
  });
});

describe("lazy engine", () => {
  test("loads once for many concurrent first requests; /health does not load", async () => {
    let loads = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const app = createApp({
      loadEngine: async () => {
        loads++;
        await gate;
        return new FakeEngine();
      },
      limits: { maxPending: 20 }, // all of them in hand at once (the bound: admission.test.ts)
    });
    expect(await (await app.request("/health")).json()).toEqual({ status: "ok", engine: "idle" });
    const pending = Array.from({ length: 20 }, (_, i) => post(app, "/v1/search/images", { tokens: [i], k: 1 }));
    await new Promise((r) => setTimeout(r, 0));
    expect(await (await app.request("/health")).json()).toEqual({ status: "ok", engine: "loading" });
    release();
    const results = await Promise.all(pending.map(async (p) => ((await (await p).json()) as any).results[0].index));
    expect(results).toEqual(Array.from({ length: 20 }, (_, i) => i));
    expect(loads).toBe(1);
    expect(await (await app.request("/health")).json()).toEqual({ status: "ok", engine: "loaded" });
  });

  test("a failed load is a 503, logged, and the next request tries again", async () => {
    let attempt = 0;
    const logged: unknown[] = [];
    const app = createApp({
      log: (_m, e) => logged.push(e),
      loadEngine: async () => {
        if (++attempt === 1) throw new Error("bucket unreachable");
        return new FakeEngine();
      },
    });
    await expectError(await app.request("/v1/model"), 503, "could not be loaded");
    expect((logged[0] as Error).message).toBe("bucket unreachable");
    expect(((await (await app.request("/health")).json()) as any).engine).toBe("failed");
    expect((await app.request("/v1/model")).status).toBe(200);
    expect(attempt).toBe(2);
  });
});

describe("concurrency", () => {
  test("50 parallel mixed requests each get their own answer", async () => {
    const { app } = appWith(new FakeEngine({ yieldTurns: 3 }), { limits: { maxPending: 50 } });
    const requests = Array.from({ length: 50 }, (_, i) => {
      switch (i % 4) {
        case 0: return { req: post(app, "/v1/search/images", { tokens: [i % 50], k: 1 }), expect: { results: [{ index: i % 20, score: 1 }], shortlist: { used: "all", stage: null, scored: 20 } } };
        case 1: return { req: post(app, "/v1/search/captions", { image: i % 20, k: 1, shortlist: 10 }), expect: { results: [{ index: i % 20, score: 1, caption: `caption ${i % 20}`, image: Math.floor((i % 20) / 5) }], shortlist: { used: 10, stage: "tranglo", scored: 10 } } };
        case 2: return { req: post(app, "/v1/score", { pairs: [{ image: i % 20, tokens: [i] }] }), expect: { scores: [(i % 20) + i] } };
        default: return { req: post(app, "/v1/search/images", { tokens: [1], k: 101 }), expect: "400" };
      }
    });
    const answers = await Promise.all(requests.map(async (r) => {
      const res = await r.req;
      return res.status === 400 ? "400" : await res.json();
    }));
    answers.forEach((a, i) => expect(a).toEqual(requests[i]!.expect));
  });
});

// --- OpenAPI -------------------------------------------------------------------------------

describe("/openapi.json", () => {
  const ROUTES = {
    "/health": "get",
    "/v1/model": "get",
    "/v1/search/images": "post",
    "/v1/search/captions": "post",
    "/v1/score": "post",
    "/v1/eval": "post",
  } as const;

  async function doc(options: Partial<EdgeAppOptions> = {}) {
    const res = await appWith(new FakeEngine(), options).app.request("/openapi.json");
    expect(res.status).toBe(200);
    return (await res.json()) as any;
  }

  test("lists every route, each POST with its JSON request schema and a 400", async () => {
    const d = await doc();
    expect(d.openapi).toBe("3.1.0");
    expect(Object.keys(d.paths).sort()).toEqual(Object.keys(ROUTES).sort());
    for (const [path, method] of Object.entries(ROUTES)) {
      const op = d.paths[path][method];
      expect(op.responses["200"].content["application/json"].schema.type).toBe("object");
      if (method === "post") {
        const schema = op.requestBody.content["application/json"].schema;
        expect(schema.type).toBe("object");
        expect(schema.additionalProperties).toBe(false);
        expect(op.responses["400"]).toBeDefined();
      }
    }
  });

  test("request schemas carry the limits", async () => {
    const d = await doc();
    const images = d.paths["/v1/search/images"].post.requestBody.content["application/json"].schema;
    expect(images.properties.k).toMatchObject({ type: "integer", minimum: 1, maximum: 100, default: 10 });
    expect(images.properties.text).toMatchObject({ type: "string", minLength: 1, maxLength: 1000 });
    expect(images.properties.tokens).toMatchObject({ type: "array", items: { type: "integer", minimum: 0 }, maxItems: MAX_QUERY_TOKENS });
    const captions = d.paths["/v1/search/captions"].post.requestBody.content["application/json"].schema;
    expect(captions.properties.features).toMatchObject({ type: "array", items: { type: "array", items: { type: "number" } } });
    const score = d.paths["/v1/score"].post.requestBody.content["application/json"].schema;
    expect(score.required).toEqual(["pairs"]);
    expect(score.properties.pairs).toMatchObject({ minItems: 1, maxItems: 256 });
  });

  test("a smaller maxK shows in the document and in validation", async () => {
    const d = await doc({ limits: { maxK: 20 } });
    const images = d.paths["/v1/search/images"].post.requestBody.content["application/json"].schema;
    expect(images.properties.k.maximum).toBe(20);
    const { app } = appWith(new FakeEngine(), { limits: { maxK: 20 } });
    expect((await post(app, "/v1/search/images", { text: "a", k: 20 })).status).toBe(200);
    await expectError(await post(app, "/v1/search/images", { text: "a", k: 21 }), 400, "k");
  });
});
