/**
 * A frozen ParamStore (an inference model's) keeps the transposes of its weights: the same numbers
 * as a store that transposes on every call, one kept tensor per transposed weight however many calls,
 * and nothing left behind when it is disposed.
 */
import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import * as tf from "../../../shared/model/tf";
import { initBackend } from "../../../trainer/backend";
import { sgrafConfig } from "../../../shared/model/config";
import { ParamStore } from "../../../shared/model/params";
import { encodeCaptions, encodeImages, similarityMatrix } from "../../../shared/model/inference";
import { setWasmTransposedMatMulFast } from "../../../shared/model/ops";
import { Random } from "../../../shared/random";

for (const backend of ["wasm", "cpu"] as const) {
  describe(`frozen parameters (${backend})`, () => {
    beforeAll(async () => {
      await initBackend(backend);
    });
    afterAll(() => setWasmTransposedMatMulFast(false));

    // wasm with and without the fast transposed product: matMul2d transposes explicitly only without it.
    for (const fastT of backend === "wasm" ? [false, true] : [true]) {
      test(`same similarities, transposes kept once${backend === "wasm" ? `, transposed products ${fastT ? "fast" : "slow"}` : ""}`, () => {
        if (backend === "wasm") setWasmTransposedMatMulFast(fastT);
        const cfg = sgrafConfig({ img_dim: 12, embed_size: 8, word_dim: 6, sim_dim: 4, proj_dim: 3, vocab_size: 30, module_name: "SGR" });
        const seed = 11;
        const plain = ParamStore.init(cfg, new Random(seed));
        const frozen = ParamStore.init(cfg, new Random(seed)).freeze();
        const rng = new Random(3);
        const nI = 3;
        const images = rng.uniformArray(nI * 36 * 12, 0, 2);
        const lengths = Int32Array.from([4, 7, 2, 5]);
        const T = 7;
        const tokens = new Int32Array(lengths.length * T);
        for (let c = 0; c < lengths.length; c++) for (let t = 0; t < lengths[c]; t++) tokens[c * T + t] = 1 + rng.nextInt(29);
        const score = (p: ParamStore) => similarityMatrix(p, encodeImages(p, images, nI), encodeCaptions(p, tokens, lengths));
        const expected = score(plain);
        const first = score(frozen);
        const afterFirst = tf.memory().numTensors;
        const second = score(frozen);
        expect(Array.from(first)).toEqual(Array.from(expected));
        expect(Array.from(second)).toEqual(Array.from(expected));
        // The second call reuses what the first kept: no tensor more.
        expect(tf.memory().numTensors).toBe(afterFirst);
        const before = tf.memory().numTensors;
        plain.dispose();
        const plainCount = before - tf.memory().numTensors;
        const beforeFrozen = tf.memory().numTensors;
        frozen.dispose();
        const kept = beforeFrozen - tf.memory().numTensors - plainCount;
        // The GRU's weight_hh is transposed explicitly on every backend: at least that one was kept, and released.
        expect(kept).toBeGreaterThanOrEqual(1);
      });
    }

    test("replace: the same similarities with each transposed weight's values released, one copy of it kept", () => {
      if (backend === "wasm") setWasmTransposedMatMulFast(false);
      const cfg = sgrafConfig({ img_dim: 12, embed_size: 8, word_dim: 6, sim_dim: 4, proj_dim: 3, vocab_size: 30, module_name: "SGR" });
      const plain = ParamStore.init(cfg, new Random(5));
      const replaced = ParamStore.init(cfg, new Random(5)).freeze("replace");
      const rng = new Random(4);
      const images = rng.uniformArray(2 * 36 * 12, 0, 2);
      const lengths = Int32Array.from([3, 5]);
      const tokens = Int32Array.from([1, 2, 3, 0, 0, 4, 5, 6, 7, 8]);
      const score = (p: ParamStore) => similarityMatrix(p, encodeImages(p, images, 2), encodeCaptions(p, tokens, lengths));
      const bytesBefore = tf.memory().numBytes;
      expect(Array.from(score(replaced))).toEqual(Array.from(score(plain)));
      // weight_hh was transposed: its own values are gone, its transpose serves.
      expect(replaced.get("txt_enc.cap_rnn.weight_hh_l0").isDisposed).toBe(true);
      // The word embeddings (gathered) and tranglo's weight (read by the first stage) are never replaced.
      expect(replaced.get("txt_enc.embed.weight").isDisposed).toBe(false);
      expect(replaced.get("sim_enc.sim_tranglo_w.weight").isDisposed).toBe(false);
      expect(Array.from(score(replaced))).toEqual(Array.from(score(plain)));
      // Every transpose took its weight's place, but tranglo's (kept for the first stage): no byte more than that one.
      expect(tf.memory().numBytes).toBeLessThanOrEqual(bytesBefore + replaced.get("sim_enc.sim_tranglo_w.weight").size * 4);
      replaced.dispose();
      plain.dispose();
    });
  });
}
