/**
 * `bun run edge` with its default `--shortlist auto`: a model whose export fitted a distilled
 * first stage is served two-stage with k′ = 128 unless a request says otherwise; a model without
 * one stays exhaustive; an explicit --shortlist wins. Real servers on the quick model exported
 * with the embedded test split as gallery (100 images, 500 captions).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdir, mkdtemp, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileAssets } from "../../edge/adapters/bun";
import { REGIONS, sgrafConfig } from "../../shared/model/config";
import { encodeModelPackage } from "../../shared/model/package";
import { ParamStore } from "../../shared/model/params";
import { Random } from "../../shared/random";
import { loadPackage } from "../../shared/retrieval/pc2-engine";
import { AUTO_SHORTLIST, autoShortlist } from "../../shared/retrieval/shortlist";
import { initBackend } from "../../trainer/backend";
import { loadSplit, loadVocabulary } from "../../trainer/data/datasets";
import { ensureSynthetic } from "../../trainer/data/synthetic";
import { exportModel } from "../../trainer/export";
import { QUICK_MODEL_DIR } from "../../trainer/quick-eval";
import { REPO_ROOT } from "../support";
import { startEdge } from "./browser/harness";

let root = "";
const dirs = { head: "", plain: "" };

beforeAll(async () => {
  await initBackend("wasm");
  root = await mkdtemp(join(tmpdir(), "pc2-auto-shortlist-"));
  const base = await loadPackage(fileAssets(QUICK_MODEL_DIR), QUICK_MODEL_DIR);
  const ds = ensureSynthetic(resolve(REPO_ROOT, ".cache"), { imgDim: base.config.img_dim });
  const { vocab, vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
  const load = (split: "test" | "train") => loadSplit({ dataPath: ds.dataPath, dataName: ds.dataName, split, vocab, vocabSize, imgDim: base.config.img_dim });
  const common = { config: base.config, nets: base.nets, names: base.netNames, dtype: "uint8" as const, vocab: vocab.toJSON(), gallery: load("test") };
  dirs.head = join(root, "head");
  dirs.plain = join(root, "plain");
  await exportModel(dirs.head, { ...common, headFrom: load("train"), headImages: 40 });
  await exportModel(dirs.plain, common);
  for (const p of base.nets) p.dispose();
}, 120_000);

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

/** The served default: what /v1/model says of the first stage, and what an image→text search without a shortlist used. */
async function served(modelDir: string, args: string[] = []) {
  const server = await startEdge(modelDir, 60_000, ["--workers", "0", ...args]);
  try {
    const model = (await (await fetch(`${server.url}/v1/model`)).json()) as { gallery: { firstStage: string } };
    const r = await fetch(`${server.url}/v1/search/captions`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ image: 3, k: 5 }) });
    const body = (await r.json()) as { shortlist: unknown };
    return { firstStage: model.gallery.firstStage, shortlist: body.shortlist, log: server.logs() };
  } finally {
    await server.stop();
  }
}

describe("--shortlist auto (the default)", () => {
  test("resolves to 128 for a distilled first stage, to all without one, within --max-shortlist", () => {
    expect(autoShortlist("distilled", 1024)).toBe(AUTO_SHORTLIST);
    expect(autoShortlist("distilled", 64)).toBe(64);
    expect(autoShortlist("distilled", 0)).toBe("all");
    expect(autoShortlist("tranglo", 1024)).toBe("all");
    expect(autoShortlist(undefined, 1024)).toBe("all");
  });

  test("a model with a distilled head is served two-stage at k′ = 128, and the start line says so", async () => {
    const r = await served(dirs.head);
    expect(r.firstStage).toBe("distilled");
    expect(r.shortlist).toEqual({ used: 128, stage: "distilled", scored: 128 });
    expect(r.log).toContain("default shortlist 128 (first stage: distilled)");
  }, 120_000);

  test("a model without one stays exhaustive; an explicit --shortlist wins over auto", async () => {
    const plain = await served(dirs.plain);
    expect(plain.firstStage).toBe("tranglo");
    expect(plain.shortlist).toEqual({ used: "all", stage: null, scored: 500 });
    const all = await served(dirs.head, ["--shortlist", "all"]);
    expect(all.shortlist).toEqual({ used: "all", stage: null, scored: 500 });
  }, 120_000);
});

describe("--nets", () => {
  test("serves the nets named (net A alone here), and refuses a malformed list at start", async () => {
    const server = await startEdge(dirs.head, 60_000, ["--workers", "1", "--nets", "A"]);
    try {
      const model = (await (await fetch(`${server.url}/v1/model`)).json()) as { nets: string[] };
      expect(model.nets).toEqual(["A"]);
      expect(server.logs()).toContain("nets A, default shortlist 128");
    } finally {
      await server.stop();
    }
    await expect(startEdge(dirs.head, 60_000, ["--nets", "A,,B"])).rejects.toThrow('--nets: invalid value "A,,B"');
    await expect(startEdge(dirs.head, 60_000, ["--nets", "C"])).rejects.toThrow("the model's nets are A, B; asked for C");
  }, 120_000);
});

describe("--weights", () => {
  test("int8 holds the encoders' matrices at a byte per value, in process and in the pool's workers; the scores agree with float32", async () => {
    // The quick model's matrices are all under KEEP_FLOAT32_BELOW values (stored float32): a larger random net, no gallery.
    const config = sgrafConfig({ img_dim: 72, embed_size: 64, word_dim: 24, sim_dim: 16, proj_dim: 4, vocab_size: 200 });
    const nets = [ParamStore.init(config, new Random(1)), ParamStore.init(config, new Random(2))];
    const files = await encodeModelPackage({ config, netNames: ["A", "B"], nets, dtype: "uint8", vocab: null, gallery: null });
    for (const n of nets) n.dispose();
    const dir = join(root, "int8");
    await mkdir(dir);
    for (const [name, bytes] of files) await writeFile(join(dir, name), bytes);
    const rng = new Random(3);
    const features = () => Array.from({ length: REGIONS }, () => Array.from(rng.uniformArray(config.img_dim, 0, 1)));
    const pairs = [0, 1, 2].map((i) => ({ features: features(), tokens: [1, 5 + i, 9, 14 + 3 * i, 2] }));
    const scores: number[][] = [];
    for (const args of [["--workers", "0"], ["--workers", "0", "--weights", "int8"], ["--workers", "1", "--weights", "int8"]]) {
      const server = await startEdge(dir, 60_000, args);
      try {
        const model = (await (await fetch(`${server.url}/v1/model`)).json()) as { weights: { held: string; int8Matrices: number; int8Bytes: number } };
        const int8 = args.includes("int8");
        expect(model.weights.held).toBe(int8 ? "int8" : "float32");
        // Per net: the image encoder, the embeddings, the GRU's four, the poolings' four E × E maps.
        expect(model.weights.int8Matrices).toBe(int8 ? 2 * 10 : 0);
        const r = await fetch(`${server.url}/v1/score`, { method: "POST", headers: { "content-type": "application/json" }, body: JSON.stringify({ pairs }) });
        expect(r.status).toBe(200);
        scores.push(((await r.json()) as { scores: number[] }).scores);
      } finally {
        await server.stop();
      }
    }
    for (const s of scores.slice(1)) s.forEach((x, i) => expect(Math.abs(x - scores[0]![i]!)).toBeLessThan(1e-5));
    await expect(startEdge(dir, 60_000, ["--weights", "int4"])).rejects.toThrow("--weights");
  }, 180_000);
});
