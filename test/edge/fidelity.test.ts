/**
 * Fidelity of the uint8 export: the committed small model (assets/quick-model, float16 storage,
 * i.e. exactly representable float32 values) exported as float32 and as uint8 (weights and gallery),
 * evaluated through the edge engine on the embedded dataset's test split. The uint8 model's rsum
 * must be within 1.0 of the float32 model's, and the top-1 of their similarity rankings (the best
 * image for every caption, the best caption for every image) must agree for at least 99% of queries.
 * The quick model's inference weights all hold fewer than 4,096 values and so stay float32: here the
 * rsum and the agreement check the float16 gallery. What uint8 weights cost is measured on the e2e
 * model (docs/performance.md).
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { resolve } from "node:path";
import { fileAssets } from "../../edge/adapters/bun";
import { Pc2Engine, loadPackage } from "../../shared/retrieval/pc2-engine";
import { residentGallery } from "../../shared/retrieval/region-store";
import { type Gallery, KEEP_FLOAT32_BELOW, type ModelPackage, MODEL_JSON, decodeModelPackage, encodeModelPackage, manifestDigest } from "../../shared/model/package";
import { ensembleSimilarity } from "../../shared/model/inference";
import { initBackend } from "../../trainer/backend";
import { loadSplit, loadVocabulary } from "../../trainer/data/datasets";
import { ensureSynthetic } from "../../trainer/data/synthetic";
import { buildGallery } from "../../trainer/export";
import { QUICK_MODEL_DIR } from "../../trainer/quick-eval";
import { REPO_ROOT } from "../support";
import { sgrafConfig } from "../../shared/model/config";
import { ParamStore } from "../../shared/model/params";
import { Random } from "../../shared/random";

let uint8Files: Map<string, Uint8Array>;

async function exported(pkg: ModelPackage, gallery: Gallery, dtype: "float32" | "uint8"): Promise<ModelPackage> {
  const files = await encodeModelPackage({ config: pkg.config, netNames: pkg.netNames, nets: pkg.nets, dtype, vocab: pkg.vocab, gallery });
  if (dtype === "uint8") uint8Files = files;
  const decoded = await decodeModelPackage(files.get(MODEL_JSON)!, (n) => files.get(n)!, dtype);
  // The region shards decoded here, so that the similarities below use the gallery's arrays directly.
  return { ...decoded, gallery: await residentGallery(decoded.gallery!) };
}

function ensembleSims(pkg: ModelPackage): Float32Array {
  const g = pkg.gallery!;
  return ensembleSimilarity(pkg.nets, (k) => g.images[k], (k) => g.captions[k]);
}

function argmaxRows(s: Float32Array, rows: number, cols: number, transpose: boolean): Int32Array {
  const n = transpose ? cols : rows;
  const m = transpose ? rows : cols;
  const out = new Int32Array(n);
  for (let a = 0; a < n; a++) {
    let best = 0;
    let bestV = -Infinity;
    for (let b = 0; b < m; b++) {
      const v = transpose ? s[b * cols + a] : s[a * cols + b];
      if (v > bestV) {
        bestV = v;
        best = b;
      }
    }
    out[a] = best;
  }
  return out;
}

describe("uint8 export fidelity on the embedded test split", () => {
  let f32: ModelPackage;
  let u8: ModelPackage;
  beforeAll(async () => {
    await initBackend("wasm");
    const base = await loadPackage(fileAssets(QUICK_MODEL_DIR), QUICK_MODEL_DIR);
    const ds = ensureSynthetic(resolve(REPO_ROOT, ".cache"), { imgDim: base.config.img_dim });
    const { vocab, vocabSize } = loadVocabulary({ vocabPath: ds.vocabPath, dataName: ds.dataName });
    const test = loadSplit({ dataPath: ds.dataPath, dataName: ds.dataName, split: "test", vocab, vocabSize, imgDim: base.config.img_dim });
    const gallery = await buildGallery(base.nets, test, vocab.toJSON());
    f32 = await exported(base, gallery, "float32");
    u8 = await exported(base, gallery, "uint8");
    for (const p of base.nets) p.dispose();
  }, 120_000);

  test("the gallery of a uint8 export is float16", () => {
    const small = (w: { shape: number[] }) => w.shape.reduce((a, d) => a * d, 1) < KEEP_FLOAT32_BELOW;
    // Its encodings are in the region shards (shared/model/region-shards.ts), float16 whatever their size.
    expect(u8.json.gallery!.regions!.dtype).toBe("float16");
    expect(f32.json.gallery!.regions!.dtype).toBe("float32");
    // Every weight of 4,096 values or more is uint8; the package is an inference model (no pseudo-classification head).
    expect(u8.json.weightsManifest[0].weights.every((w) => small(w) === !w.quantization && (!w.quantization || w.quantization.dtype === "uint8"))).toBe(true);
    expect(u8.json.weightsManifest[0].weights.some((w) => w.name.includes("img_pro_head"))).toBe(false);
  });

  test("rsum within 1.0 of the float32 model's", async () => {
    const a = await new Pc2Engine(f32).evaluate();
    const b = await new Pc2Engine(u8).evaluate();
    console.log(`rsum float32 ${a.rsum.toFixed(2)}, uint8 ${b.rsum.toFixed(2)} (${a.images} images, ${a.captions} captions)`);
    expect(a.rsum).toBeGreaterThan(60); // a trained model, far from chance (about 32 here)
    expect(Math.abs(a.rsum - b.rsum)).toBeLessThanOrEqual(1.0);
  }, 60_000);

  test("top-1 of the similarity rankings agrees for at least 99% of queries", () => {
    const g = f32.gallery!;
    const nI = g.images[0].count;
    const nC = g.captions[0].count;
    const sa = ensembleSims(f32);
    const sb = ensembleSims(u8);
    let agree = 0;
    let total = 0;
    for (const transpose of [false, true]) {
      const ta = argmaxRows(sa, nI, nC, transpose);
      const tb = argmaxRows(sb, nI, nC, transpose);
      for (let i = 0; i < ta.length; i++) agree += ta[i] === tb[i] ? 1 : 0;
      total += ta.length;
    }
    console.log(`top-1 agreement ${((100 * agree) / total).toFixed(2)}% of ${total} queries`);
    expect(agree / total).toBeGreaterThanOrEqual(0.99);
  }, 60_000);

  test("uint8 weights take about a quarter of the float32 bytes (small tensors stay float32)", async () => {
    // The quick model's inference tensors all hold fewer than 4,096 values: a larger net, random weights.
    const config = sgrafConfig({ img_dim: 64, embed_size: 128, word_dim: 64, sim_dim: 32, proj_dim: 16, vocab_size: 300 });
    const net = ParamStore.init(config, new Random(2));
    const size = async (dtype: "float32" | "uint8") => {
      const files = await encodeModelPackage({ config, netNames: ["A"], nets: [net], dtype, vocab: null });
      return [...files.entries()].filter(([n]) => n.startsWith("weights")).reduce((s, [, b]) => s + b.length, 0);
    };
    const [a, b] = [await size("float32"), await size("uint8")];
    net.dispose();
    expect(b).toBeLessThan(a * 0.35);
  });
});

describe("model.json is checked against itself and against its files", () => {
  const decodeWith = async (edit: (j: Record<string, any>) => void, resign: boolean) => {
    const j = JSON.parse(new TextDecoder().decode(uint8Files.get(MODEL_JSON)!));
    edit(j);
    if (resign) j.digest = await manifestDigest(j);
    try {
      const pkg = await decodeModelPackage(new TextEncoder().encode(JSON.stringify(j)), (n) => uint8Files.get(n)!, "tampered");
      for (const p of pkg.nets) p.dispose();
      return "accepted";
    } catch (e) {
      return (e as Error).message;
    }
  };

  test("an edited count is refused by the manifest digest (gallery.images 200 on a 100-image gallery, or 50)", async () => {
    for (const images of [200, 50]) {
      const msg = await decodeWith((j) => {
        j.gallery.captions = images * j.gallery.perCaptions;
        j.gallery.images = images;
      }, false);
      expect(msg).toMatch(/tampered\/model.json: manifest digest mismatch/);
    }
  });

  test("a re-signed manifest whose counts disagree with the files is still refused", async () => {
    // 200 images with 1,000 captions: consistent with perCaptions, not with the tensors' shapes.
    const msg = await decodeWith((j) => {
      j.gallery.images *= 2;
      j.gallery.captions *= 2;
    }, true);
    expect(msg).toMatch(/gallery\.json: \d+ captions, model\.json says \d+|gallery tensor .* has shape \[.*\], the gallery's counts imply/);
    expect(await decodeWith((j) => void (j.gallery.images = Math.floor(j.gallery.images / 2)), true)).toMatch(/captions must be images × perCaptions/);
  });

  test("an unchanged manifest decodes; a version-1 package asks to be re-exported", async () => {
    expect(await decodeWith(() => {}, false)).toBe("accepted");
    expect(await decodeWith((j) => void (j.version = 1), true)).toMatch(/package version 1; this code reads version 2 \(re-export/);
  });
});
