/**
 * The gallery's region store (shared/model/region-shards.ts, shared/retrieval/region-store.ts):
 * a package whose encodings are in shards answers every verb exactly as the same gallery held in
 * memory, reads only the shards of the items it scores, refuses a missing or corrupt shard with an
 * error naming the file (the edge: 500 with that message), and keeps its cache under its budget.
 * A small random-weights model; the encodings are float16 values, so that the in-memory, the
 * pre-region-store and the sharded gallery hold the very same numbers.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { createApp } from "../../../edge/app";
import { floatToHalf, halfToFloat } from "../../../shared/formats/ndarray";
import { REGIONS, sgrafConfig } from "../../../shared/model/config";
import type { EncodedCaptions, EncodedImages } from "../../../shared/model/inference";
import { type Gallery, MODEL_JSON, type ModelPackage, decodeModelPackage, encodeModelPackage } from "../../../shared/model/package";
import { ParamStore } from "../../../shared/model/params";
import { regionShardName, type StoredRegions } from "../../../shared/model/region-shards";
import { Random } from "../../../shared/random";
import { type AssetSource, memoryAssets } from "../../../shared/retrieval/assets";
import { EngineStorageError } from "../../../shared/retrieval/engine";
import { loadPackage, Pc2Engine } from "../../../shared/retrieval/pc2-engine";
import { ShardedRegions } from "../../../shared/retrieval/region-store";
import { initBackend } from "../../../trainer/backend";

const config = sgrafConfig({ img_dim: 8, embed_size: 16, word_dim: 8, sim_dim: 8, proj_dim: 8, vocab_size: 20 });
const E = config.embed_size;
const IMAGES = 22;
const PER_SHARD = 4; // 6 shards per net and side, the last one of 2 images
const SHARDS = Math.ceil(IMAGES / PER_SHARD);
let nets: ParamStore[];
let gallery: Gallery;
let sharded: Map<string, Uint8Array>;
let legacy: Map<string, Uint8Array>;

/** Uniform values in [-1, 1] that float16 represents exactly. */
function halves(rng: Random, n: number): Float32Array {
  return rng.uniformArray(n, -1, 1).map((x) => halfToFloat(floatToHalf(x)));
}

function encodings(rng: Random, tokens: number[][]): { images: EncodedImages; captions: EncodedCaptions } {
  const lengths = Int32Array.from(tokens, (t) => t.length);
  const offsets = new Int32Array(lengths.length);
  for (let i = 1; i < lengths.length; i++) offsets[i] = offsets[i - 1] + lengths[i - 1];
  const words = lengths.reduce((a, b) => a + b, 0);
  return {
    images: { count: IMAGES, embed: E, emb: halves(rng, IMAGES * REGIONS * E), glo: halves(rng, IMAGES * E) },
    captions: { count: tokens.length, embed: E, lengths, offsets, emb: halves(rng, words * E), glo: halves(rng, tokens.length * E) },
  };
}

/** An AssetSource that records every name it is asked for. */
function counting(files: Map<string, Uint8Array>): AssetSource & { asked: string[] } {
  const inner = memoryAssets(Object.fromEntries(files));
  const asked: string[] = [];
  return { asked, get: (path) => (asked.push(path), inner.get(path)) };
}

const regionReads = (asked: string[]) => asked.filter((n) => n.startsWith("regions-"));

beforeAll(async () => {
  await initBackend("cpu");
  const rng = new Random(5);
  nets = [ParamStore.init(config, rng), ParamStore.init(config, rng)];
  // Captions of 3 to 7 tokens: caption shards of uneven byte sizes.
  const tokens = Array.from({ length: IMAGES * 5 }, (_, i) => [1, ...Array.from({ length: 1 + (i % 5) }, (_, j) => 3 + ((i * 7 + j) % 16)), 2]);
  const enc = nets.map(() => encodings(rng, tokens));
  gallery = { split: "test", perCaptions: 5, images: enc.map((e) => e.images), captions: enc.map((e) => e.captions), texts: tokens.map((_, i) => `caption ${i}`), tokens };
  const input = { config, netNames: ["A", "B"], nets, dtype: "uint8" as const, vocab: null, gallery };
  sharded = await encodeModelPackage({ ...input, regionShardItems: PER_SHARD });
  legacy = await encodeModelPackage({ ...input, regionShardItems: 0 });
});

/** The sharded package loaded through `assets`, and its engine. */
async function shardedEngine(assets: AssetSource, regionCacheBytes?: number, streamBlockImages?: number): Promise<{ pkg: ModelPackage; engine: Pc2Engine }> {
  const pkg = await loadPackage(assets, "model");
  return { pkg, engine: new Pc2Engine(pkg, { regionCacheBytes, streamBlockImages }) };
}

describe("the sharded layout", () => {
  test("each net and side has its shards, listed in model.json with size and SHA-256; no encoding stays in gallery-NN.bin", () => {
    const j = JSON.parse(new TextDecoder().decode(sharded.get(MODEL_JSON)!));
    expect(j.gallery.regions.imagesPerShard).toBe(PER_SHARD);
    expect(j.gallery.regions.dtype).toBe("float16");
    for (const net of ["A", "B"]) {
      for (const side of ["images", "captions"] as const) {
        const names = Array.from({ length: SHARDS }, (_, s) => regionShardName(net, side, s));
        expect(j.gallery.regions.nets[net][side]).toEqual(names);
        for (const n of names) expect(j.files[n].bytes).toBe(sharded.get(n)!.length);
      }
    }
    // An image shard: 4 images × (36 regions + 1 pooled vector) × E float16 values; the last holds 2.
    expect(sharded.get("regions-A-images-0000.bin")!.length).toBe(PER_SHARD * (REGIONS + 1) * E * 2);
    expect(sharded.get(`regions-A-images-000${SHARDS - 1}.bin`)!.length).toBe(2 * (REGIONS + 1) * E * 2);
    expect([...sharded.keys()].some((n) => n.startsWith("gallery-"))).toBe(false);
    expect(j.gallery.manifest.map((g: { paths: string[] }) => g.paths)).toEqual([["stage1-00.bin"]]);
  });

  test("loading reads no shard; the engine holds none of the encodings", async () => {
    const assets = counting(sharded);
    const { pkg, engine } = await shardedEngine(assets);
    expect(regionReads(assets.asked)).toEqual([]);
    expect(pkg.gallery!.images[0].emb.length).toBe(0);
    expect(engine.memory().gallery).toBe(0);
    expect(engine.info().gallery).toMatchObject({ images: IMAGES, captions: 5 * IMAGES, perCaptions: 5, words: gallery.tokens.flat().length });
    engine.dispose();
  });
});

describe("answers equal the in-memory gallery's", () => {
  let memory: Pc2Engine;
  let before: Pc2Engine;
  let store: Pc2Engine;
  beforeAll(async () => {
    const old = await decodeModelPackage(legacy.get(MODEL_JSON)!, (n) => legacy.get(n)!, "legacy");
    memory = new Pc2Engine({ ...old, gallery });
    before = new Pc2Engine(old); // a package written before the region store: still read
    // A budget of three image shards: searches evict and re-read. Exhaustive work streams over blocks of two shards (8 images, 40 captions).
    store = (await shardedEngine(memoryAssets(Object.fromEntries(sharded)), 3 * PER_SHARD * (REGIONS + 1) * E * 2, 2 * PER_SHARD)).engine;
  });

  test("the package written before the region store decodes its encodings at load", async () => {
    expect(before.pkg.gallery!.regions).toBeUndefined();
    expect(Array.from(before.pkg.gallery!.images[1].emb)).toEqual(Array.from(gallery.images[1].emb));
  });

  test("text→image and image→text shortlist searches, exactly", async () => {
    for (const c of [0, 7, 33, 64, 109]) {
      const q = { tokens: gallery.tokens[c] };
      for (const shortlist of [1, 5, 12]) {
        const want = await memory.searchImages(q, 5, { shortlist });
        expect(await store.searchImages(q, 5, { shortlist })).toEqual(want);
        expect(await before.searchImages(q, 5, { shortlist })).toEqual(want);
      }
    }
    for (const image of [0, 5, 21]) {
      const want = await memory.searchCaptions({ image }, 6, { shortlist: 17 });
      expect(await store.searchCaptions({ image }, 6, { shortlist: 17 })).toEqual(want);
    }
  });

  test("exhaustive searches, streamed over the shards, and /v1/score of gallery images", async () => {
    const close = (a: { hits: Array<{ index: number; score: number }> }, b: typeof a) => {
      expect(a.hits.map((h) => h.index)).toEqual(b.hits.map((h) => h.index));
      a.hits.forEach((h, i) => expect(h.score).toBeCloseTo(b.hits[i].score, 5));
    };
    close(await store.searchImages({ tokens: gallery.tokens[12] }, 8, { shortlist: "all" }), await memory.searchImages({ tokens: gallery.tokens[12] }, 8, { shortlist: "all" }));
    close(await store.searchCaptions({ image: 9 }, 8, { shortlist: "all" }), await memory.searchCaptions({ image: 9 }, 8, { shortlist: "all" }));
    const pairs = [{ image: 3, tokens: gallery.tokens[15] }, { image: 20, tokens: gallery.tokens[2] }];
    const [a, b] = [await store.score(pairs), await memory.score(pairs)];
    a.forEach((x, i) => expect(x).toBeCloseTo(b[i], 5));
  });

  test("the evaluation, streamed block by block (3 × 3 blocks of images and captions)", async () => {
    const [a, b] = [await store.evaluate({ shortlist: 6 }), await memory.evaluate({ shortlist: 6 })];
    expect(a).toEqual(b);
    expect(await store.evaluate({ limit: 9 })).toEqual(await memory.evaluate({ limit: 9 }));
  });
});

describe("shards are read on demand", () => {
  test("a shortlist search reads the image shards of its shortlist only, for each net, once while they are cached", async () => {
    const assets = counting(sharded);
    const { engine } = await shardedEngine(assets);
    for (const c of [4, 50, 91]) {
      assets.asked.length = 0;
      const before = engine.memory().regions!;
      const r = await engine.searchImages({ tokens: gallery.tokens[c] }, 3, { shortlist: 3 });
      // With k = k′ the hits are the shortlist.
      const shards = [...new Set(r.hits.map((h) => Math.floor(h.index / PER_SHARD)))].sort();
      const fresh = regionReads(assets.asked);
      expect(new Set(fresh).size).toBe(fresh.length);
      for (const n of fresh) expect(shards.map((s) => ["A", "B"].map((net) => regionShardName(net, "images", s))).flat()).toContain(n);
      // Each needed shard is read now, or was read by an earlier search and is cached.
      const after = engine.memory().regions!;
      expect(after.reads - before.reads + (after.hits - before.hits)).toBe(2 * shards.length);
      expect(after.reads - before.reads).toBe(fresh.length);
    }
    // Again: all cached, nothing read.
    assets.asked.length = 0;
    await engine.searchImages({ tokens: gallery.tokens[4] }, 3, { shortlist: 3 });
    expect(regionReads(assets.asked)).toEqual([]);
    // Image→text of a gallery image: its image shard, and the caption shards of its shortlist.
    assets.asked.length = 0;
    const r = await engine.searchCaptions({ image: 13 }, 2, { shortlist: 2 });
    const capShards = new Set(r.hits.map((h) => Math.floor(h.index / (5 * PER_SHARD))));
    const want = ["A", "B"].flatMap((net) => [...capShards].map((s) => regionShardName(net, "captions", s)));
    expect(regionReads(assets.asked).filter((n) => n.includes("captions")).sort()).toEqual(want.sort());
    expect(regionReads(assets.asked).filter((n) => n.includes("images")).every((n) => n.endsWith(`-000${Math.floor(13 / PER_SHARD)}.bin`))).toBe(true);
    engine.dispose();
  });
});

describe("a missing or corrupt shard", () => {
  const victim = "regions-B-images-0002.bin";

  async function broken(edit: (files: Map<string, Uint8Array>) => void) {
    const files = new Map(sharded);
    edit(files);
    return (await shardedEngine(memoryAssets(Object.fromEntries(files)))).engine;
  }
  const variants: Array<[string, (f: Map<string, Uint8Array>) => void, string]> = [
    ["missing", (f) => f.delete(victim), "missing file of the exported model"],
    ["corrupt (one byte changed)", (f) => f.set(victim, f.get(victim)!.map((b, i) => (i === 100 ? b ^ 1 : b))), "SHA-256 mismatch"],
    ["truncated", (f) => f.set(victim, f.get(victim)!.slice(0, 64)), "64 bytes, model.json says"],
  ];

  for (const [what, edit, cause] of variants) {
    test(`${what}: the search that needs it fails naming the file; one that does not, answers`, async () => {
      const engine = await broken(edit);
      const err = await engine.searchImages({ tokens: gallery.tokens[0] }, 3, { shortlist: "all" }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(EngineStorageError);
      expect((err as Error).message).toContain(victim);
      expect((err as Error).message).toContain(cause);
      // Image 0's shard is intact.
      expect((await engine.searchCaptions({ image: 0 }, 1, { shortlist: "all" })).hits.length).toBe(1);
      await expect(engine.evaluate()).rejects.toThrow(victim);
      engine.dispose();
    });
  }

  test("through the edge app: 500 with the message naming the file, for searches and the evaluation", async () => {
    for (const [, edit, cause] of variants) {
      const engine = await broken(edit);
      const app = createApp({ engine, log: () => {} });
      const post = (path: string, body: unknown) => app.request(path, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify(body) });
      for (const res of [await post("/v1/search/images", { tokens: gallery.tokens[0], k: 3, shortlist: "all" }), await post("/v1/eval", {})]) {
        const body = (await res.json()) as { error: { status: number; message: string } };
        expect({ http: res.status, status: body.error.status }).toEqual({ http: 500, status: 500 });
        expect(body.error.message).toContain(victim);
        expect(body.error.message).toContain(cause);
      }
      engine.dispose();
    }
  });
});

describe("the shard cache", () => {
  /** A store of `n` shards of `bytes` bytes each, counting reads. */
  function fakeStore(shardBytes: number[]): StoredRegions & { reads: string[] } {
    const reads: string[] = [];
    const names = shardBytes.map((_, s) => regionShardName("A", "images", s));
    return {
      reads,
      layout: { dtype: "float32", imagesPerShard: 1, nets: { A: { images: names, captions: [] } } },
      geometry: { images: shardBytes.length, perCaptions: 1, imagesPerShard: 1, embed: 1, lengths: new Int32Array(0), offsets: new Int32Array(0) },
      nets: ["A"],
      read: async (name) => {
        reads.push(name);
        return new Uint8Array(shardBytes[names.indexOf(name)]);
      },
    };
  }
  const get = (r: ShardedRegions, s: number) => r.images(0, [s]).catch(() => null); // sizes do not fit the geometry: only the reads matter

  test("keeps what its budget holds, evicting the least recently used; never more than the budget", async () => {
    const store = fakeStore([100, 100, 100, 100]);
    const regions = new ShardedRegions(store, 250);
    for (const s of [0, 1, 0, 2, 0, 1, 3, 1]) {
      await get(regions, s);
      expect(regions.stats().cached).toBeLessThanOrEqual(250);
    }
    // 0 read; 1 read; 0 hit; 2 read (evicts 1); 0 hit; 1 read (evicts 2); 3 read (evicts 0); 1 hit.
    expect(store.reads.map((n) => Number(n.slice(-8, -4)))).toEqual([0, 1, 2, 1, 3]);
    expect(regions.stats()).toMatchObject({ cached: 200, budget: 250, reads: 5, hits: 3 });
  });

  test("a shard larger than the budget is read each time and never kept; a budget of 0 keeps nothing", async () => {
    const store = fakeStore([100, 300]);
    const regions = new ShardedRegions(store, 250);
    for (const s of [1, 0, 1]) await get(regions, s);
    expect(store.reads.length).toBe(3);
    expect(regions.stats().cached).toBe(100);
    const none = new ShardedRegions(fakeStore([10]), 0);
    await get(none, 0);
    await get(none, 0);
    expect(none.stats()).toMatchObject({ cached: 0, reads: 2, hits: 0 });
  });

  test("concurrent requests for one shard read it once", async () => {
    const store = fakeStore([100]);
    const regions = new ShardedRegions(store, 1000);
    await Promise.all([get(regions, 0), get(regions, 0), get(regions, 0)]);
    expect(store.reads.length).toBe(1);
  });

  test("the engine's searches stay within the budget it was given", async () => {
    const shardBytes = PER_SHARD * (REGIONS + 1) * E * 2;
    const { engine } = await shardedEngine(memoryAssets(Object.fromEntries(sharded)), 2.5 * shardBytes);
    for (const c of [1, 30, 77]) {
      await engine.searchImages({ tokens: gallery.tokens[c] }, 3, { shortlist: 8 });
      expect(engine.memory().regions!.cached).toBeLessThanOrEqual(2.5 * shardBytes);
    }
    await engine.evaluate();
    const stats = engine.memory().regions!;
    expect(stats.cached).toBeLessThanOrEqual(2.5 * shardBytes);
    expect(stats.cached).toBeGreaterThan(0);
    engine.dispose();
  });
});
