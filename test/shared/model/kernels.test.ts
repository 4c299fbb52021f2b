import { beforeAll, describe, expect, test } from "bun:test";
import * as tf from "../../../shared/model/tf";
import { SimdBmm } from "../../../shared/model/kernels";
import { initBackend, loadNativeBmm } from "../../../trainer/backend";
import { Random } from "../../../shared/random";

/** Plain triple loop: the definition of op(A) @ op(B). */
function reference(a: Float32Array, b: Float32Array, d: { batch: number; batchA: number; batchB: number; m: number; k: number; n: number; transA: boolean; transB: boolean }) {
  const out = new Float64Array(d.batch * d.m * d.n);
  for (let t = 0; t < d.batch; t++) {
    const ao = (d.batchA === 1 ? 0 : t) * d.m * d.k;
    const bo = (d.batchB === 1 ? 0 : t) * d.k * d.n;
    for (let i = 0; i < d.m; i++)
      for (let j = 0; j < d.n; j++) {
        let s = 0;
        for (let p = 0; p < d.k; p++) s += a[ao + (d.transA ? p * d.m + i : i * d.k + p)] * b[bo + (d.transB ? j * d.k + p : p * d.n + j)];
        out[t * d.m * d.n + i * d.n + j] = s;
      }
  }
  return out;
}

describe("SIMD batched matmul (native/bmm.wasm)", () => {
  const module = loadNativeBmm();
  test("the committed module is present", () => {
    expect(module).toBeDefined();
  });

  test("matches the definition for every transpose combination, odd sizes and broadcast batches", () => {
    const simd = new SimdBmm(module!);
    const rng = new Random(3);
    for (const [batch, batchA, batchB, m, k, n] of [
      [5, 5, 5, 7, 9, 6],
      [3, 1, 3, 4, 5, 13],
      [3, 3, 1, 1, 1, 1],
      [2, 2, 2, 17, 32, 19],
      [2, 2, 1, 5, 70, 9],
      [1, 1, 1, 9, 130, 6],
    ]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const d = { batch, batchA, batchB, m, k, n, transA, transB };
          const a = rng.uniformArray(batchA * m * k, -1, 1);
          const b = rng.uniformArray(batchB * k * n, -1, 1);
          const out = new Float32Array(batch * m * n);
          simd.run(a, b, out, d);
          const want = reference(a, b, d);
          for (let i = 0; i < want.length; i++) expect(Math.abs(out[i] - want[i])).toBeLessThan(1e-5 * Math.max(1, k));
        }
      }
    }
  });

  test("serves tf.matMul on the wasm backend (batched and transposed), equal to a broadcast product", async () => {
    await initBackend("wasm");
    const before = tf.memory().numTensors;
    const worst = tf.tidy(() => {
      const a = tf.randomNormal([6, 11, 8], 0, 1, "float32", 1);
      const b = tf.randomNormal([6, 13, 8], 0, 1, "float32", 2);
      const fast = tf.matMul(a, b, false, true);
      const ref = tf.sum(tf.mul(tf.expandDims(a, 2), tf.expandDims(b, 1)), 3);
      return tf.max(tf.abs(tf.sub(fast, ref))).dataSync()[0];
    });
    expect(worst).toBeLessThan(1e-5);
    expect(tf.memory().numTensors).toBe(before);
  });
});
