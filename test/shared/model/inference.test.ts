/**
 * The sharded similarity (image side once per image, caption side once per caption, shards
 * bounded by a memory budget) equals scoring every pair on its own, one image against one caption.
 */
import { beforeAll, describe, expect, test } from "bun:test";
import * as tf from "../../../shared/model/tf";
import { initBackend } from "../../../trainer/backend";
import { sgrafConfig } from "../../../shared/model/config";
import { ParamStore } from "../../../shared/model/params";
import { EVAL, captionSide, encodeImage, encodeText, imageSide, similarity } from "../../../shared/model/sgraf";
import { encodeCaptions, encodeImages, shardShape, similarityMatrix } from "../../../shared/model/inference";
import { Random } from "../../../shared/random";

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
    });
  }
}

describe("shardShape", () => {
  test("stays within the budget and covers at least one pair", () => {
    for (const [E, S, L, budget] of [
      [1024, 256, 30, 256 * 2 ** 20],
      [64, 32, 15, 64 * 2 ** 20],
      [1024, 256, 80, 1],
    ]) {
      const s = shardShape(5000, 25000, E, S, L, budget);
      expect(s.images).toBeGreaterThanOrEqual(1);
      expect(s.captions).toBeGreaterThanOrEqual(1);
      expect(s.images).toBeLessThanOrEqual(5000);
      const perPair = (3 * 36 + 4 * E + 4 * S + 2 * (L + 1)) * (L + 1) * 4;
      if (budget > perPair) expect(s.images * s.captions * perPair).toBeLessThanOrEqual(budget);
    }
  });
});
