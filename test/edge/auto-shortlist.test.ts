/**
 * `bun run edge` with its default `--shortlist auto`: a model whose export fitted a distilled
 * first stage is served two-stage with k′ = 128 unless a request says otherwise; a model without
 * one stays exhaustive; an explicit --shortlist wins. Real servers on the quick model exported
 * with the embedded test split as gallery (100 images, 500 captions).
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, rm } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join, resolve } from "node:path";
import { fileAssets } from "../../edge/adapters/bun";
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
