/**
 * The gallery's first-stage vectors in the exported package (shared/model/package.ts): written by
 * encodeModelPackage, read back bit for bit by decodeModelPackage; a package exported before them
 * still decodes (without them) and its engine computes them; half a set is refused. A small
 * random-weights model with a random gallery: the format does not depend on the values.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { REGIONS, sgrafConfig } from "../../../shared/model/config";
import { type EncodedCaptions, type EncodedImages, encodeCaptionsAsync } from "../../../shared/model/inference";
import { type Gallery, MODEL_JSON, decodeEntry, decodeModelPackage, encodeModelPackage, galleryStageOne, manifestDigest, sha256Hex } from "../../../shared/model/package";
import { floatToHalf } from "../../../shared/formats/ndarray";
import * as tf from "../../../shared/model/tf";
import { ParamStore } from "../../../shared/model/params";
import { distilledStage, quantizeVectors, type StageOneHead, stageOneIndex, stageOneScores, TRANGLO_WEIGHT, trangloScales, trangloStage } from "../../../shared/model/stage-one";
import { Random } from "../../../shared/random";
import { Pc2Engine } from "../../../shared/retrieval/pc2-engine";
import { residentGallery } from "../../../shared/retrieval/region-store";
import { initBackend } from "../../../trainer/backend";

const config = sgrafConfig({ img_dim: 8, embed_size: 16, word_dim: 8, sim_dim: 8, proj_dim: 8, vocab_size: 20 });
const IMAGES = 12;
let nets: ParamStore[];
let gallery: Gallery;
let files: Map<string, Uint8Array>;
/** The same package in the layout from before the region store (every encoding in gallery-NN.bin). */
let legacyFiles: Map<string, Uint8Array>;

function encodings(rng: Random, tokens: number[][]): { images: EncodedImages; captions: EncodedCaptions } {
  const E = config.embed_size;
  const lengths = Int32Array.from(tokens, (t) => t.length);
  const offsets = new Int32Array(lengths.length);
  for (let i = 1; i < lengths.length; i++) offsets[i] = offsets[i - 1] + lengths[i - 1];
  const words = lengths.reduce((a, b) => a + b, 0);
  return {
    images: { count: IMAGES, embed: E, emb: rng.uniformArray(IMAGES * REGIONS * E, -1, 1), glo: rng.uniformArray(IMAGES * E, -1, 1) },
    captions: { count: tokens.length, embed: E, lengths, offsets, emb: rng.uniformArray(words * E, -1, 1), glo: rng.uniformArray(tokens.length * E, -1, 1) },
  };
}

beforeAll(async () => {
  await initBackend("cpu");
  const rng = new Random(11);
  nets = [ParamStore.init(config, rng), ParamStore.init(config, rng)];
  const tokens = Array.from({ length: IMAGES * 5 }, (_, i) => [1, 3 + (i % 15), 4 + (i % 11), 2]);
  const enc = nets.map(() => encodings(rng, tokens));
  gallery = { split: "test", perCaptions: 5, images: enc.map((e) => e.images), captions: enc.map((e) => e.captions), texts: tokens.map(() => null), tokens };
  files = await encodeModelPackage({ config, netNames: ["A", "B"], nets, dtype: "uint8", vocab: null, gallery });
  legacyFiles = await encodeModelPackage({ config, netNames: ["A", "B"], nets, dtype: "uint8", vocab: null, gallery, regionShardItems: 0 });
});

/** The gallery manifest's group of first-stage vectors (its only group with a region store). */
const stageOneGroup = (j: { gallery: { manifest: Array<{ paths: string[]; weights: Array<Record<string, unknown> & { name: string }> }> } }) => j.gallery.manifest.find((g) => g.paths[0].startsWith("stage1"))!;

const decode = (f: Map<string, Uint8Array>, json = f.get(MODEL_JSON)!) => decodeModelPackage(json, (n) => f.get(n)!, "pkg");

/** The package's model.json with its stage-one entries removed (re-signed): an export from before them (and before the region store). */
async function withoutStageOne(): Promise<Uint8Array> {
  const j = JSON.parse(new TextDecoder().decode(legacyFiles.get(MODEL_JSON)!));
  j.gallery.manifest = j.gallery.manifest.filter((g: { paths: string[] }) => !g.paths[0].startsWith("stage1"));
  j.digest = await manifestDigest(j);
  return new TextEncoder().encode(JSON.stringify(j));
}

describe("first-stage vectors in the package", () => {
  test("are written as int8 with a float32 scale per vector, in their own shards", () => {
    const j = JSON.parse(new TextDecoder().decode(files.get(MODEL_JSON)!));
    const group = stageOneGroup(j);
    expect(group.paths).toEqual(["stage1-00.bin"]);
    expect(group.weights.map((w: { name: string }) => w.name)).toEqual(["A.images.stage1", "A.images.stage1_scale", "B.images.stage1", "B.images.stage1_scale", "A.captions.stage1", "A.captions.stage1_scale", "B.captions.stage1", "B.captions.stage1_scale"]);
    expect(group.weights[0]).toEqual({ name: "A.images.stage1", shape: [IMAGES, 16], dtype: "float32", quantization: { dtype: "uint8", min: -128, scale: 1 } });
    // int8 values and float32 scales: (12 + 60) items × (16 bytes + 4) per net.
    expect(files.get("stage1-00.bin")!.length).toBe(2 * (IMAGES + 5 * IMAGES) * (16 + 4));
  });

  test("round-trip exactly: the decoded vectors are the ones computed from the float32 pooled vectors", async () => {
    const pkg = await decode(files);
    const scales = nets.map((p) => trangloScales(p.get(TRANGLO_WEIGHT).dataSync() as Float32Array, config.embed_size));
    const want = galleryStageOne(gallery, trangloStage(scales));
    const got = pkg.gallery!.stageOne!;
    for (const side of ["images", "captions"] as const) {
      for (let n = 0; n < 2; n++) {
        expect(got[side][n].count).toBe(want[side][n].count);
        expect(Array.from(got[side][n].values)).toEqual(Array.from(want[side][n].values));
        expect(Array.from(got[side][n].scales)).toEqual(Array.from(want[side][n].scales));
      }
    }
    // Some values at both ends of int8: the offset of 128 is undone.
    expect(Math.min(...got.images[0].values)).toBe(-127);
    expect(Math.max(...got.captions[1].values)).toBe(127);
    for (const p of pkg.nets) p.dispose();
  });

  test("a package exported before them decodes without them, and its engine computes the same shortlists", async () => {
    const old = await decode(legacyFiles, await withoutStageOne());
    expect(old.gallery!.stageOne).toBeUndefined();
    const current = await decode(files);
    const [a, b] = [new Pc2Engine(old), new Pc2Engine(current)];
    for (const tokens of gallery.tokens.slice(0, 6)) {
      const [x, y] = [await a.searchImages({ tokens }, 4, { shortlist: 4 }), await b.searchImages({ tokens }, 4, { shortlist: 4 })];
      expect(x.shortlist).toEqual({ used: 4, stage: "tranglo", scored: 4 });
      // The old package's vectors come from its float16 pooled vectors: the same shortlist here.
      expect(new Set(x.hits.map((h) => h.index))).toEqual(new Set(y.hits.map((h) => h.index)));
    }
    a.dispose();
    b.dispose();
  });

  test("half a set of them is refused, naming what is missing", async () => {
    const j = JSON.parse(new TextDecoder().decode(files.get(MODEL_JSON)!));
    stageOneGroup(j).weights = stageOneGroup(j).weights.filter((w: { name: string }) => w.name !== "B.captions.stage1_scale");
    // Its shard still holds those bytes: drop them with the entry so that the group's size agrees.
    const bin = files.get("stage1-00.bin")!;
    const cut = new Map(files);
    cut.set("stage1-00.bin", bin.slice(0, bin.length - 5 * IMAGES * 4));
    j.files["stage1-00.bin"] = { bytes: bin.length - 5 * IMAGES * 4, sha256: await sha256Hex(cut.get("stage1-00.bin")!) };
    j.digest = await manifestDigest(j);
    await expect(decode(cut, new TextEncoder().encode(JSON.stringify(j)))).rejects.toThrow("the gallery has some first-stage vectors but lacks B.captions.stage1_scale");
  });
});

describe("a distilled first stage's head in the package", () => {
  const D = 6;
  let head: StageOneHead;
  let withHead: Map<string, Uint8Array>;

  beforeAll(async () => {
    const rng = new Random(5);
    head = { dim: D, nets: [0, 1].map(() => ({ images: rng.uniformArray(2 * config.embed_size * D, -1, 1), captions: rng.uniformArray(2 * config.embed_size * D, -1, 1) })) };
    withHead = await encodeModelPackage({ config, netNames: ["A", "B"], nets, dtype: "uint8", vocab: null, gallery, stageOneHead: { head, fit: { images: 10 } } });
  });

  test("round-trips, and the gallery's first-stage vectors are the head's", async () => {
    const j = JSON.parse(new TextDecoder().decode(withHead.get(MODEL_JSON)!));
    expect([j.stageOneHead.stage, j.stageOneHead.dim, j.stageOneHead.fit]).toEqual(["distilled", D, { images: 10 }]);
    const pkg = await decode(withHead);
    expect(pkg.stageOneHead!.dim).toBe(D);
    for (let n = 0; n < 2; n++) for (const side of ["images", "captions"] as const) expect(Array.from(pkg.stageOneHead!.nets[n][side])).toEqual(Array.from(head.nets[n][side]));
    const want = galleryStageOne(gallery, distilledStage(head));
    for (const side of ["images", "captions"] as const)
      for (let n = 0; n < 2; n++) {
        expect(pkg.gallery!.stageOne![side][n].dim).toBe(D);
        expect(Array.from(pkg.gallery!.stageOne![side][n].values)).toEqual(Array.from(want[side][n].values));
      }
    for (const p of pkg.nets) p.dispose();
  });

  test("its engine shortlists by the head and says so; the same gallery without a head says tranglo", async () => {
    const [a, b] = [new Pc2Engine(await decode(withHead)), new Pc2Engine(await decode(files))];
    const tokens = gallery.tokens[3];
    const x = await a.searchImages({ tokens }, 3, { shortlist: 3 });
    expect(x.shortlist).toEqual({ used: 3, stage: "distilled", scored: 3 });
    expect((await b.searchImages({ tokens }, 3, { shortlist: 3 })).shortlist.stage).toBe("tranglo");
    // The shortlist is the head's top 3 for the caption as the nets encode it (the gallery's encodings here are random).
    const stage = distilledStage(head);
    const query = await Promise.all(a.pkg.nets.map((p) => encodeCaptionsAsync(p, Int32Array.from(tokens), Int32Array.from([tokens.length]))));
    const first = stageOneScores(
      [0, 1].map((n) => stage.vectors(n, "captions", query[n])),
      1,
      stageOneIndex([0, 1].map((n) => quantizeVectors(stage.vectors(n, "images", gallery.images[n]), IMAGES, D)), "dot"),
    );
    const top3 = Array.from(first, (s, i) => [s, i]).sort((p, q) => q[0] - p[0]).slice(0, 3).map(([, i]) => i);
    expect(new Set(x.hits.map((h) => h.index))).toEqual(new Set(top3));
    expect((await a.evaluate({ shortlist: 4 })).twoStage!.stage).toBe("distilled");
    a.dispose();
    b.dispose();
  });

  test("a head of the wrong shape is refused, naming the tensor", async () => {
    const j = JSON.parse(new TextDecoder().decode(withHead.get(MODEL_JSON)!));
    j.stageOneHead.dim = D + 1;
    j.stageOneHead.manifest[0].weights[0].shape = [2 * config.embed_size, D + 1];
    j.stageOneHead.manifest[0].weights[1].shape = [2 * config.embed_size, D - 1];
    j.digest = await manifestDigest(j);
    await expect(decode(withHead, new TextEncoder().encode(JSON.stringify(j)))).rejects.toThrow("head tensor A.stage1_head.captions has shape [32,5], not [32,7]");
  });
});

describe("decoding the nets asked for", () => {
  test("B alone: its weights, gallery side, first-stage vectors and head; the same search as B's own", async () => {
    const rng = new Random(8);
    const D = 4;
    const head: StageOneHead = { dim: D, nets: [0, 1].map(() => ({ images: rng.uniformArray(2 * config.embed_size * D, -1, 1), captions: rng.uniformArray(2 * config.embed_size * D, -1, 1) })) };
    const f = await encodeModelPackage({ config, netNames: ["A", "B"], nets, dtype: "float32", vocab: null, gallery, stageOneHead: { head } });
    const b = await decodeModelPackage(f.get(MODEL_JSON)!, (n) => f.get(n)!, "pkg", { nets: ["B"] });
    expect(b.netNames).toEqual(["B"]);
    expect([b.nets.length, b.gallery!.images.length, b.gallery!.captions.length, b.gallery!.stageOne!.images.length, b.stageOneHead!.nets.length]).toEqual([1, 1, 1, 1, 1]);
    expect(Array.from(b.stageOneHead!.nets[0].captions)).toEqual(Array.from(head.nets[1].captions));
    // Its encodings are net B's region shards.
    expect(Array.from((await residentGallery(b.gallery!)).images[0].glo)).toEqual(Array.from(gallery.images[1].glo));
    const w = "txt_enc.cap_rnn.weight_hh_l0";
    expect(Array.from(b.nets[0].get(w).dataSync())).toEqual(Array.from(nets[1].get(w).dataSync()));
    // An inference model: no training-only parameter is built.
    expect(b.nets[0].specs.some((s) => s.name.startsWith("img_pro_head."))).toBe(false);
    expect(b.nets[0].specs.length).toBe(nets[1].specs.length - 4);
    const engine = new Pc2Engine(b);
    expect(engine.info().nets).toEqual(["B"]);
    engine.dispose();
  });

  test("a net the package lacks is refused, naming the nets it has", async () => {
    await expect(decodeModelPackage(files.get(MODEL_JSON)!, (n) => files.get(n)!, "pkg", { nets: ["C"] })).rejects.toThrow("pkg/model.json: the model's nets are A, B; asked for C");
  });
});

describe("decodeEntry", () => {
  test("gives exactly what tf.io.decodeWeights gives, for every stored type", async () => {
    await initBackend("cpu");
    const rng = new Random(4);
    const values = rng.uniformArray(5000, -3, 3);
    values.set([0, -0, 65504, 1e-7, -2.5e-8, 3.0517578125e-5], 0); // half: max, subnormals, smallest normal
    // Tensors of 4,096 values or more are the ones stored quantized: a net with some.
    const big = sgrafConfig({ img_dim: 64, embed_size: 64, word_dim: 64, sim_dim: 8, proj_dim: 8, vocab_size: 100 });
    const net = ParamStore.init(big, rng);
    for (const dtype of ["float32", "float16", "uint16", "uint8"] as const) {
      const files = await encodeModelPackage({ config: big, netNames: ["A"], nets: [net], dtype, vocab: null });
      const j = JSON.parse(new TextDecoder().decode(files.get(MODEL_JSON)!));
      const group = j.weightsManifest[0];
      const buf = files.get(group.paths[0])!;
      const want = tf.io.decodeWeights(buf.slice().buffer, group.weights);
      let offset = 0;
      for (const w of group.weights) {
        const size = w.shape.reduce((a: number, d: number) => a * d, 1) * (w.quantization?.dtype === "uint8" ? 1 : w.quantization ? 2 : 4);
        const got = decodeEntry(buf.subarray(offset, offset + size), w);
        expect(Array.from(got)).toEqual(Array.from(want[w.name].dataSync()));
        offset += size;
      }
      if (dtype !== "float32") expect(group.weights.filter((w: { quantization?: { dtype: string } }) => w.quantization?.dtype === dtype).length).toBeGreaterThan(3);
      tf.dispose(Object.values(want));
    }
    net.dispose();
    // A float16 entry of chosen values, subnormals included.
    const half = Uint16Array.from(values.subarray(0, 6), floatToHalf);
    const entry = { name: "x", shape: [6], dtype: "float32" as const, quantization: { dtype: "float16" as const } };
    const t = tf.io.decodeWeights(half.slice().buffer, [entry]).x;
    expect(Array.from(decodeEntry(new Uint8Array(half.buffer), entry))).toEqual(Array.from(t.dataSync()));
    t.dispose();
  });
});
