/**
 * Weights held as int8 while serving (shared/model/quantized.ts, DecodeOptions.weights "int8"):
 * native/bmm.c's qmm and its JavaScript fallback against a float64 product with the dequantized
 * weights, over shapes that reach every tail of the kernel's tiles; embedding rows bit for bit what
 * the package decoder gives; a package decoded with int8 weights scores as the float32 one does, on
 * wasm and cpu, holds its matrices at a byte per value, and refuses to hand one out as a tensor.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import { sgrafConfig } from "../../../shared/model/config";
import { encodeCaptions, encodeImages, similarityMatrix } from "../../../shared/model/inference";
import { decodeEntry, decodeModelPackage, encodeModelPackage, KEEP_FLOAT32_BELOW, MODEL_JSON } from "../../../shared/model/package";
import { heldAsInt8, ParamStore } from "../../../shared/model/params";
import { Int8Weights, isInt8 } from "../../../shared/model/quantized";
import * as tf from "../../../shared/model/tf";
import { Random } from "../../../shared/random";
import { initBackend } from "../../../trainer/backend";
import { loadNativeBmm } from "../../../native/load";

const native = loadNativeBmm();

function reference(q: Uint8Array, rows: number, cols: number, scale: number, min: number, x: Float32Array, m: number): Float64Array {
  const y = new Float64Array(m * rows);
  for (let i = 0; i < m; i++)
    for (let o = 0; o < rows; o++) {
      let s = 0;
      for (let p = 0; p < cols; p++) s += x[i * cols + p] * Math.fround(q[o * cols + p] * scale + min);
      y[i * rows + o] = s;
    }
  return y;
}

/** Largest |a − b| over the largest |b| (products of mixed signs: an absolute error at the scale of the outputs). */
function relErr(a: Float32Array, b: Float64Array): number {
  let err = 0;
  let top = 0;
  for (let i = 0; i < b.length; i++) {
    err = Math.max(err, Math.abs(a[i] - b[i]));
    top = Math.max(top, Math.abs(b[i]));
  }
  return err / top;
}

describe("int8 products", () => {
  test("the native module is built with qmm", () => {
    expect(native).toBeDefined();
    expect(new Int8Weights(native).native).toBe(true);
    expect(new Int8Weights(null).native).toBe(false);
  });

  // rows × cols (cols not a multiple of 4 reaches the scalar tail) × m (1–3: the one-row tiles; 4–9 the four-row ones and their rest).
  const shapes: Array<[number, number]> = [
    [7, 13],
    [5, 4],
    [33, 300],
    [96, 1024],
  ];
  for (const [rows, cols] of shapes) {
    for (const m of [1, 3, 4, 5, 9]) {
      test(`[${m}, ${cols}] × [${rows}, ${cols}]ᵀ: native and JavaScript equal the dequantized product`, () => {
        const rng = new Random(rows * 100 + cols + m);
        const q = Uint8Array.from({ length: rows * cols }, () => rng.nextInt(256));
        const scale = 0.013;
        const min = -1.7; // values centred near zero, as trained weights are
        // Inputs of one sign, as squared differences are: the case where the offset term is largest.
        const x = rng.uniformArray(m * cols, m % 2 ? -1 : 0, 1);
        const expected = reference(q, rows, cols, scale, min, x, m);
        for (const weights of [new Int8Weights(native), new Int8Weights(null)]) {
          const w = weights.add(q, [rows, cols], scale, min);
          const y = w.matmulT(x, m);
          expect(y.length).toBe(m * rows);
          expect(relErr(y, expected)).toBeLessThan(2e-6);
        }
      });
    }
  }

  test("rows beyond one scratch block: the blocks join where they should", () => {
    const rng = new Random(9);
    const rows = 64;
    const cols = 4096; // 2 MB of scratch holds about 124 such rows with their outputs
    const m = 301;
    const q = Uint8Array.from({ length: rows * cols }, () => rng.nextInt(256));
    const x = rng.uniformArray(m * cols, -1, 1);
    const y = new Int8Weights(native).add(q, [rows, cols], 0.002, -0.25).matmulT(x, m);
    expect(relErr(y, reference(q, rows, cols, 0.002, -0.25, x, m))).toBeLessThan(2e-6);
  });

  test("several matrices in one memory stay apart, also after it grows", () => {
    const rng = new Random(4);
    const weights = new Int8Weights(native);
    const qs = [0, 1, 2].map(() => Uint8Array.from({ length: 200 * 300 }, () => rng.nextInt(256)));
    const ms = qs.map((q, i) => weights.add(q, [200, 300], 0.01 * (i + 1), -i));
    const x = rng.uniformArray(2 * 300, -1, 1);
    for (let i = 0; i < 3; i++) expect(relErr(ms[i].matmulT(x, 2), reference(qs[i], 200, 300, 0.01 * (i + 1), -i, x, 2))).toBeLessThan(2e-6);
    expect(weights.byteLength).toBeGreaterThanOrEqual(3 * 200 * 300);
    expect(weights.byteLength).toBeLessThan(3 * 200 * 300 + 4 * 2 ** 20);
  });

  test("gathered rows equal the package decoder's values bit for bit; a row out of range throws", () => {
    const rng = new Random(2);
    const q = Uint8Array.from({ length: 30 * 7 }, () => rng.nextInt(256));
    const spec = { name: "e", shape: [30, 7], dtype: "float32" as const, quantization: { dtype: "uint8" as const, min: -0.123, scale: 0.00097 } };
    const all = decodeEntry(q, spec);
    for (const weights of [new Int8Weights(native), new Int8Weights(null)]) {
      const w = weights.add(q, [30, 7], 0.00097, -0.123);
      const ids = [4, 0, 29, 4];
      const rows = w.gather(ids);
      expect(Array.from(rows)).toEqual(ids.flatMap((r) => Array.from(all.subarray(r * 7, r * 7 + 7))));
      expect(() => w.gather([30])).toThrow(/row 30 of an int8 matrix of 30 rows/);
    }
  });
});

for (const backend of ["wasm", "cpu"] as const) {
  describe(`a package decoded with int8 weights (${backend})`, () => {
    const cfg = sgrafConfig({ img_dim: 72, embed_size: 64, word_dim: 24, sim_dim: 64, proj_dim: 4, vocab_size: 200, module_name: backend === "wasm" ? "SGR" : "SAF" });
    let files: Map<string, Uint8Array>;
    beforeAll(async () => {
      await initBackend(backend);
      const nets = [ParamStore.init(cfg, new Random(1)), ParamStore.init(cfg, new Random(2))];
      files = await encodeModelPackage({ config: cfg, netNames: ["A", "B"], nets, dtype: "uint8", vocab: null, gallery: null });
      for (const n of nets) n.dispose();
    });
    const decode = (options: Parameters<typeof decodeModelPackage>[3]) => decodeModelPackage(files.get(MODEL_JSON)!, (n) => files.get(n)!, "pkg", options);

    test("the same scores as float32 weights, every large matrix held at a byte per value", async () => {
      const float = await decode({ transposes: "replace" });
      const int8 = await decode({ weights: "int8" });
      const rng = new Random(3);
      const nI = 3;
      const images = rng.uniformArray(nI * 36 * cfg.img_dim, 0, 2);
      const lengths = Int32Array.from([4, 7, 2]);
      const T = 7;
      const tokens = new Int32Array(lengths.length * T);
      for (let c = 0; c < lengths.length; c++) for (let t = 0; t < lengths[c]; t++) tokens[c * T + t] = 1 + rng.nextInt(cfg.vocab_size - 1);
      for (let n = 0; n < 2; n++) {
        const f = float.nets[n];
        const q = int8.nets[n];
        // The encoders' matrices that the package stores as uint8 (KEEP_FLOAT32_BELOW values and up) are int8: the
        // image encoder, the embeddings, the GRU's, the poolings' E × E maps. Not the similarity's, no vector.
        const stored = q.specs.filter((s) => s.shape.length === 2 && !s.buffer && s.shape[0] * s.shape[1] >= KEEP_FLOAT32_BELOW);
        const matrices = stored.filter(heldAsInt8).map((s) => s.name);
        expect(matrices.length).toBe(10);
        expect(stored.some((s) => s.name === "sim_enc.sim_tranloc_w.weight" && !heldAsInt8(s))).toBe(true);
        expect([...q.int8.keys()].sort()).toEqual(matrices.sort());
        expect(isInt8(q.weight("img_enc.fc.weight"))).toBe(true);
        expect(() => q.get("txt_enc.embed.weight")).toThrow(/held as int8 for serving/);
        const imgF = encodeImages(f, images, nI);
        const imgQ = encodeImages(q, images, nI);
        const capF = encodeCaptions(f, tokens, lengths);
        const capQ = encodeCaptions(q, tokens, lengths);
        const close = (a: ArrayLike<number>, b: ArrayLike<number>) => {
          expect(a.length).toBe(b.length);
          let err = 0;
          for (let i = 0; i < a.length; i++) err = Math.max(err, Math.abs(a[i] - b[i]));
          expect(err).toBeLessThan(1e-5);
        };
        close(imgQ.emb, imgF.emb);
        close(imgQ.glo, imgF.glo);
        close(capQ.emb, capF.emb);
        close(capQ.glo, capF.glo);
        close(similarityMatrix(q, imgQ, capQ), similarityMatrix(f, imgF, capF));
        // The int8 products' tensors are released as the float32 ones are: nothing left after a call.
        const tensors = tf.memory().numTensors;
        similarityMatrix(q, encodeImages(q, images, nI), encodeCaptions(q, tokens, lengths));
        expect(tf.memory().numTensors).toBe(tensors);
      }
      const before = tf.memory().numTensors;
      for (const p of int8.nets) p.dispose();
      // Only the float tensors (vectors and tranglo) were tensors to release.
      expect(before - tf.memory().numTensors).toBeLessThan(2 * int8.nets[0].specs.length);
      for (const p of float.nets) p.dispose();
    });

    test("a package stored as uint16 stays float32", async () => {
      const nets = [ParamStore.init(cfg, new Random(1))];
      const f16 = await encodeModelPackage({ config: cfg, netNames: ["A"], nets, dtype: "uint16", vocab: null, gallery: null });
      nets[0].dispose();
      const p16 = await decodeModelPackage(f16.get(MODEL_JSON)!, (n) => f16.get(n)!, "pkg16", { weights: "int8" });
      expect(p16.nets[0].int8.size).toBe(0);
      p16.nets[0].dispose();
    });
  });
}

describe("decoding the nets asked for", () => {
  test("net A of an A+B package: B's own weight files are never read; a corrupt one spoils B only", async () => {
    await initBackend("cpu");
    // float32, about 5 MB per net: three 4 MB weight files, the middle one holding both nets' bytes.
    const cfg = sgrafConfig({ img_dim: 512, embed_size: 256, word_dim: 128, sim_dim: 64, proj_dim: 4, vocab_size: 2000 });
    const nets = [ParamStore.init(cfg, new Random(1)), ParamStore.init(cfg, new Random(2))];
    const files = await encodeModelPackage({ config: cfg, netNames: ["A", "B"], nets, dtype: "float32", vocab: null, gallery: null });
    const weightFiles = [...files.keys()].filter((n) => n.startsWith("weights-")).sort();
    expect(weightFiles.length).toBe(3);
    const reads: string[] = [];
    const read = (f: Map<string, Uint8Array>) => (name: string) => {
      reads.push(name);
      return f.get(name)!;
    };
    const a = await decodeModelPackage(files.get(MODEL_JSON)!, read(files), "pkg", { nets: ["A"] });
    expect(reads.filter((n) => n.startsWith("weights-")).sort()).toEqual(weightFiles.slice(0, 2));
    // What was read decodes to the weights written, bit for bit, across the file boundary too.
    for (const s of a.nets[0].specs) expect(Array.from(a.nets[0].get(s.name).dataSync())).toEqual(Array.from(nets[0].get(s.name).dataSync()));
    a.nets[0].dispose();
    // The last file holds only B's weights: corrupt, it leaves A's load alone and stops B's with the file named.
    const corrupt = new Map(files);
    const bad = corrupt.get(weightFiles[2])!.slice();
    bad[100] ^= 0xff;
    corrupt.set(weightFiles[2], bad);
    const again = await decodeModelPackage(corrupt.get(MODEL_JSON)!, read(corrupt), "pkg", { nets: ["A"] });
    again.nets[0].dispose();
    await expect(decodeModelPackage(corrupt.get(MODEL_JSON)!, read(corrupt), "pkg", { nets: ["B"] })).rejects.toThrow(`pkg/${weightFiles[2]}: SHA-256 mismatch`);
    for (const n of nets) n.dispose();
  });
});
