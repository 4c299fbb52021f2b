/**
 * The sharded similarity (image side once per image, caption side once per caption, shards
 * bounded by a memory budget) equals scoring every pair on its own, one image against one caption.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as tf from "../../../shared/model/tf";
import { initBackend } from "../../../trainer/backend";
import { sgrafConfig } from "../../../shared/model/config";
import { ParamStore } from "../../../shared/model/params";
import { EVAL, captionSide, encodeImage, encodeText, imageSide, similarity } from "../../../shared/model/sgraf";
import { type Readback, encodeCaptions, encodeCaptionsAsync, encodeImages, encodeImagesAsync, ensemblePairedSimilarityAsync, ensembleSimilarity, ensembleSimilarityAsync, readAsync, readSync, shardShape, similarityMatrix } from "../../../shared/model/inference";
import { Random } from "../../../shared/random";
import { gpuBufferStats, releaseWebGpu, resetPeakBytes } from "../../../trainer/webgpu";

for (const backend of ["wasm", "cpu"] as const) {
  for (const module_name of ["SGR", "SAF"] as const) {
    describe(`sharded similarity equals pairwise (${backend}, ${module_name})`, () => {
      beforeAll(async () => {
        await initBackend(backend);
      });
      test("every budget, every pair", () => {
        const cfg = sgrafConfig({ img_dim: 12, embed_size: 8, word_dim: 6, sim_dim: 4, proj_dim: 3, vocab_size: 30, module_name });
        const rng = new Random(7);
        const p = ParamStore.init(cfg, rng);
        const nI = 5;
        const nC = 9;
        const images = rng.uniformArray(nI * 36 * 12, 0, 2);
        const lengths = Int32Array.from({ length: nC }, (_, i) => 2 + ((i * 5) % 9));
        const T = Math.max(...lengths);
        const tokens = new Int32Array(nC * T);
        for (let c = 0; c < nC; c++) for (let t = 0; t < lengths[c]; t++) tokens[c * T + t] = 1 + rng.nextInt(29);
        const imgs = encodeImages(p, images, nI);
        const caps = encodeCaptions(p, tokens, lengths);
        // Pair by pair: one image, one caption, through the training-time forward.
        const pairwise = new Float32Array(nI * nC);
        for (let i = 0; i < nI; i++) {
          for (let c = 0; c < nC; c++) {
            pairwise[i * nC + c] = tf.tidy(() => {
              const img = encodeImage(p, tf.tensor3d(images.subarray(i * 36 * 12, (i + 1) * 36 * 12), [1, 36, 12]));
              const len = lengths[c];
              const cap = encodeText(p, tf.tensor2d(tokens.subarray(c * T, c * T + len), [1, len], "int32"), [len], EVAL);
              return similarity(p, imageSide(p, img, EVAL), captionSide(p, cap, [len], EVAL), EVAL).dataSync()[0];
            });
          }
        }
        for (const budget of [1, 20_000, 200_000, 256 * 2 ** 20]) {
          const s = similarityMatrix(p, imgs, caps, { budgetBytes: budget });
          for (let k = 0; k < s.length; k++) expect(Math.abs(s[k] - pairwise[k])).toBeLessThan(2e-6);
        }
        p.dispose();
      });

      test("paired similarity (/v1/score's) is the matrix's diagonal, every budget, no tensor left", async () => {
        const cfg = sgrafConfig({ img_dim: 12, embed_size: 8, word_dim: 6, sim_dim: 4, proj_dim: 3, vocab_size: 30, module_name });
        const rng = new Random(9);
        const nets = [ParamStore.init(cfg, rng), ParamStore.init(cfg, rng)];
        const n = 6;
        const lengths = Int32Array.from({ length: n }, (_, i) => 2 + ((i * 5) % 9));
        const T = Math.max(...lengths);
        const tokens = Int32Array.from({ length: n * T }, (_, i) => (i % T < lengths[Math.floor(i / T)] ? 1 + rng.nextInt(29) : 0));
        const images = rng.uniformArray(n * 36 * 12, 0, 2);
        const imgs = nets.map((p) => encodeImages(p, images, n));
        const caps = nets.map((p) => encodeCaptions(p, tokens, lengths));
        const matrix = ensembleSimilarity(nets, (k) => imgs[k], (k) => caps[k]);
        const before = tf.memory().numTensors;
        for (const budget of [1, 50_000, 256 * 2 ** 20]) {
          const paired = await ensemblePairedSimilarityAsync(nets, (k) => imgs[k], (k) => caps[k], { budgetBytes: budget });
          expect(paired.length).toBe(n);
          for (let i = 0; i < n; i++) expect(Math.abs(paired[i] - matrix[i * n + i])).toBeLessThan(2e-6);
        }
        expect(tf.memory().numTensors).toBe(before);
        for (const p of nets) p.dispose();
      });
    });
  }
}

describe("readbacks: the async forms (the retrieval engine's) equal the sync ones", () => {
  beforeAll(async () => {
    await initBackend("wasm");
  });

  test("same encodings and ensemble, bit for bit, and no tensor left behind", async () => {
    const cfg = sgrafConfig({ img_dim: 12, embed_size: 8, word_dim: 6, sim_dim: 4, proj_dim: 3, vocab_size: 30 });
    const rng = new Random(11);
    const nets = [ParamStore.init(cfg, rng), ParamStore.init(cfg, rng)];
    const images = rng.uniformArray(4 * 36 * 12, 0, 2);
    const lengths = Int32Array.of(3, 7, 5);
    const tokens = Int32Array.from({ length: 3 * 7 }, (_, i) => (i % 7 < lengths[Math.floor(i / 7)] ? 1 + rng.nextInt(29) : 0));
    const before = tf.memory().numTensors;
    const imgs = nets.map((p) => encodeImages(p, images, 4));
    const caps = nets.map((p) => encodeCaptions(p, tokens, lengths));
    const imgsAsync = await Promise.all(nets.map((p) => encodeImagesAsync(p, images, 4)));
    const capsAsync = await Promise.all(nets.map((p) => encodeCaptionsAsync(p, tokens, lengths)));
    expect(imgsAsync).toEqual(imgs);
    expect(capsAsync).toEqual(caps);
    // A budget small enough for several shards per net.
    const sync = ensembleSimilarity(nets, (k) => imgs[k], (k) => caps[k], { budgetBytes: 50_000 });
    const async_ = await ensembleSimilarityAsync(nets, (k) => imgs[k], (k) => caps[k], { budgetBytes: 50_000 });
    expect(Array.from(async_)).toEqual(Array.from(sync));
    expect(tf.memory().numTensors).toBe(before);
    for (const p of nets) p.dispose();
  });

  test("a read that fails still disposes what the computation holds", async () => {
    const before = tf.memory().numTensors;
    function* steps(): Readback<number> {
      const held = tf.ones([3]);
      const gone = tf.ones([3]);
      gone.dispose(); // reading it throws, as a read from a lost device would
      try {
        return (yield held)[0] + (yield gone)[0];
      } finally {
        held.dispose();
      }
    }
    expect(() => readSync(steps())).toThrow("disposed");
    await expect(readAsync(steps())).rejects.toThrow("disposed");
    expect(tf.memory().numTensors).toBe(before);
  });
});

describe("shardShape", () => {
  test("covers at least one pair and never more than there are", () => {
    for (const [E, S, L, budget] of [
      [1024, 256, 30, 256 * 2 ** 20],
      [64, 32, 15, 64 * 2 ** 20],
      [1024, 256, 80, 1],
    ]) {
      for (const module of ["SGR", "SAF"] as const) {
        const s = shardShape(5000, 25000, module, E, S, L, budget);
        expect(s.images).toBeGreaterThanOrEqual(1);
        expect(s.captions).toBeGreaterThanOrEqual(1);
        expect(s.images).toBeLessThanOrEqual(5000);
        expect(s.captions).toBeLessThanOrEqual(25000);
      }
    }
    // A tiny budget still scores one pair at a time; a huge one takes everything in one shard.
    expect(shardShape(7, 9, "SGR", 64, 32, 12, 1)).toEqual({ images: 1, captions: 1 });
    expect(shardShape(7, 9, "SAF", 64, 32, 12, 2 ** 40)).toEqual({ images: 7, captions: 9 });
  });

  // The budget is a promise about memory: measure the tensors alive while a matrix is scored. On
  // webgpu also the GPU buffers in use (tensors, uniforms, readback staging), fewer sizes: SwiftShader is slow.
  for (const [backend, module_name, sizes] of [
    ["wasm", "SGR", [[16, 8, 2], [64, 32, 8], [64, 32, 30], [256, 64, 8]]],
    ["wasm", "SAF", [[16, 8, 2], [64, 32, 8], [64, 32, 30], [256, 64, 8]]],
    ["webgpu", "SGR", [[16, 8, 2]]],
    ["webgpu", "SAF", [[16, 8, 2]]],
  ] as const) {
    test(`the tensors of a shard stay under the budget (${module_name}, ${backend})`, async () => {
      await initBackend(backend);
      const budget = 4 * 2 ** 20;
      for (const [E, S, minLen] of sizes) {
        const cfg = sgrafConfig({ img_dim: 16, embed_size: E, word_dim: 8, sim_dim: S, proj_dim: 4, vocab_size: 40, module_name });
        const rng = new Random(3);
        const p = ParamStore.init(cfg, rng);
        const nI = 12;
        const nC = 40;
        const lengths = Int32Array.from({ length: nC }, () => minLen + rng.nextInt(9));
        const T = Math.max(...lengths);
        const tokens = new Int32Array(nC * T);
        for (let c = 0; c < nC; c++) for (let t = 0; t < lengths[c]; t++) tokens[c * T + t] = 1 + rng.nextInt(39);
        const imgs = encodeImages(p, rng.uniformArray(nI * 36 * 16, 0, 1), nI);
        const caps = encodeCaptions(p, tokens, lengths);
        const shard = shardShape(nI, nC, module_name, E, S, T, budget);
        expect(shard.images * shard.captions).toBeLessThan(nI * nC); // several shards: the budget binds
        const base = tf.memory().numBytes;
        const gpuBase = backend === "webgpu" ? gpuBufferStats().bytesUsed : 0;
        if (backend === "webgpu") resetPeakBytes();
        const info = await tf.profile(() => void similarityMatrix(p, imgs, caps, { budgetBytes: budget }));
        const used = info.peakBytes - base;
        if (used > budget) throw new Error(`E ${E} S ${S} L ${T}: ${(used / 2 ** 20).toFixed(2)} MB of tensors alive for a ${budget / 2 ** 20} MB budget`);
        if (backend === "webgpu") {
          const gpu = gpuBufferStats().peakBytesUsed - gpuBase;
          if (gpu > budget) throw new Error(`E ${E} S ${S} L ${T}: ${(gpu / 2 ** 20).toFixed(2)} MB of GPU buffers in use for a ${budget / 2 ** 20} MB budget`);
          console.log(`webgpu ${module_name} E ${E} S ${S} L ${T}: peak ${(used / 2 ** 20).toFixed(2)} MB of tensors, ${(gpu / 2 ** 20).toFixed(2)} MB of GPU buffers in use, budget ${budget / 2 ** 20} MB`);
        }
        // The bound is not loose either: a shard uses more than a quarter of it.
        expect(used).toBeGreaterThan(budget / 4);
        p.dispose();
      }
    }, 600_000);
  }
});

afterAll(() => releaseWebGpu());
