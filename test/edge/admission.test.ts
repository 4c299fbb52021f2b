/**
 * The edge app's bounds on engine work (edge/admission.ts, the cost checks of edge/app.ts), through
 * `app.request()` with engines that block until told: a request over the work limit is refused
 * with a message saying how much to ask for, a full queue and a second evaluation answer 503 with
 * Retry-After, and a request past its deadline answers 504 with its work aborted.
 */
import { describe, expect, test } from "bun:test";
import { createApp } from "../../edge/app.ts";
import type { EdgeLimits } from "../../edge/schemas.ts";
import type { EvalOptions, EvalResult, SearchOptions, SearchResult, TextQuery } from "../../shared/retrieval/engine.ts";
import { FakeEngine } from "./fake-engine.ts";

/** A FakeEngine whose searches and evaluations wait until `release()`, or until their signal fires. */
class BlockedEngine extends FakeEngine {
  readonly signals: AbortSignal[] = [];
  private opened = Promise.withResolvers<void>();
  release(): void {
    this.opened.resolve();
  }
  private async hold(signal?: AbortSignal): Promise<void> {
    this.signals.push(signal!);
    await new Promise<void>((resolve, reject) => {
      void this.opened.promise.then(resolve);
      signal?.addEventListener("abort", () => reject(signal.reason));
    });
  }
  override async searchImages(q: TextQuery, k: number, options?: SearchOptions, signal?: AbortSignal): Promise<SearchResult> {
    await this.hold(signal);
    return super.searchImages(q, k, options);
  }
  override async evaluate(options?: EvalOptions, signal?: AbortSignal): Promise<EvalResult> {
    await this.hold(signal);
    return super.evaluate(options);
  }
}

function appWith(engine: FakeEngine, limits: Partial<EdgeLimits>) {
  return createApp({ engine, limits, log: () => {} });
}

function post(app: ReturnType<typeof createApp>, path: string, body: unknown) {
  return app.request(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
}

async function error(res: Response) {
  return { status: res.status, retryAfter: res.headers.get("retry-after"), ...((await res.json()) as { error: { message: string } }).error };
}

/** Lets the requests sent so far reach the engine. */
const settle = () => new Promise((r) => setTimeout(r, 10));

describe("work limit", () => {
  // FakeEngine: 3 regions, 20 images of 5 captions of 10 tokens. A 3-token pair is 3 × 750 + 3 × 7
  // = 2,271 cells; an evaluation of n images n² × 5 × 140.
  test("a score over it is refused with 422 and the most pairs to ask for", async () => {
    const engine = new FakeEngine();
    const app = appWith(engine, { maxWork: 10_000 });
    const pair = { image: 1, tokens: [1, 2, 3] };
    const e = await error(await post(app, "/v1/score", { pairs: Array(10).fill(pair) }));
    expect(e).toMatchObject({ status: 422, message: expect.stringContaining("22710 cells of work, over the server's limit of 10000 (maxWork): ask for at most 4 pairs like these") });
    expect(engine.calls).toEqual([]);
    expect((await post(app, "/v1/score", { pairs: Array(4).fill(pair) })).status).toBe(200);
  });

  test("an evaluation over it is refused with the largest limit that fits", async () => {
    const engine = new FakeEngine();
    const app = appWith(engine, { maxWork: 100_000 });
    expect(await error(await post(app, "/v1/eval", {}))).toMatchObject({ status: 422, message: expect.stringContaining("pass limit ≤ 11 images") });
    expect((await post(app, "/v1/eval", { limit: 12 })).status).toBe(422);
    expect(engine.calls).toEqual([]);
    expect((await post(app, "/v1/eval", { limit: 11 })).status).toBe(200);
  });

  test("a search over a gallery too large for it says so", async () => {
    const app = appWith(new FakeEngine(), { maxWork: 1000 });
    expect(await error(await post(app, "/v1/search/captions", { image: 1 }))).toMatchObject({ status: 422, message: expect.stringContaining("the gallery is too large") });
  });

  test("a shortlist counts: the work of its re-ranking and its first stage, not the whole gallery's", async () => {
    // 100 captions of 10 tokens, 3 regions: 140 cells a caption; a shortlist of 5 adds 100 first-stage cells.
    const app = appWith(new FakeEngine(), { maxWork: 1000 });
    expect(await error(await post(app, "/v1/search/captions", { image: 1, shortlist: 0 }))).toMatchObject({ status: 422, message: expect.stringContaining("send a shorter query, a shortlist (two-stage search)") });
    expect((await post(app, "/v1/search/captions", { image: 1, shortlist: 5 })).status).toBe(200);
    expect(await error(await post(app, "/v1/search/captions", { image: 1, shortlist: 7 }))).toMatchObject({ status: 422, message: expect.stringContaining("about 1080 cells") });
  });
});

describe("queue and concurrency", () => {
  test("a full queue answers 503 with Retry-After; /health still answers; room again once work ends", async () => {
    const engine = new BlockedEngine();
    const app = appWith(engine, { maxPending: 2 });
    const held = [post(app, "/v1/search/images", { tokens: [1] }), post(app, "/v1/search/images", { tokens: [2] })];
    await settle();
    const refused = await error(await post(app, "/v1/search/images", { tokens: [3] }));
    expect(refused).toMatchObject({ status: 503, retryAfter: "1", message: expect.stringContaining("2 requests in hand") });
    expect((await app.request("/health")).status).toBe(200);
    engine.release();
    expect((await Promise.all(held)).map((r) => r.status)).toEqual([200, 200]);
    expect((await post(app, "/v1/search/images", { tokens: [3] })).status).toBe(200);
  });

  test("a second concurrent evaluation answers 503 while searches still run", async () => {
    const engine = new BlockedEngine();
    const app = appWith(engine, { maxEvals: 1 });
    const first = post(app, "/v1/eval", { limit: 2 });
    await settle();
    expect(await error(await post(app, "/v1/eval", { limit: 2 }))).toMatchObject({ status: 503, retryAfter: "1", message: expect.stringContaining("1 evaluation is running") });
    const search = post(app, "/v1/search/images", { tokens: [1] });
    engine.release();
    expect([(await first).status, (await search).status]).toEqual([200, 200]);
  });
});

describe("deadline", () => {
  test("past it the answer is 504, the engine's signal fired, and the request no longer counts", async () => {
    const engine = new BlockedEngine();
    const app = appWith(engine, { deadlineMs: 20, maxPending: 1 });
    expect(await error(await post(app, "/v1/eval", {}))).toMatchObject({ status: 504, message: expect.stringContaining("20 ms deadline") });
    expect(engine.signals.map((s) => s.aborted)).toEqual([true]);
    engine.release();
    expect((await post(app, "/v1/search/images", { tokens: [1] })).status).toBe(200);
  });
});
