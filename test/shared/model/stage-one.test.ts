/**
 * The first stage (shared/model/stage-one.ts) against its definition written out directly:
 * -Σ_nets Σ_e w_e (a_e - b_e)² with w the squared column norms of sim_tranglo_w, on random
 * vectors; the int8 vectors within half a step of their float values.
 */
import { describe, expect, test } from "bun:test";
import { Random } from "../../../shared/random";
import { dequantize, stageOneIndex, stageOneScores, stageOneVectors, trangloScales, weighted } from "../../../shared/model/stage-one";

const E = 24;
const S = 7;
const rng = new Random(3);
const W = [rng.uniformArray(S * E, -1, 1), rng.uniformArray(S * E, -1, 1)]; // two nets' [S, E]

/** -Σ_e w_e (a_e - b_e)², w_e = Σ_k W[k, e]²: the benchmark's `tranglo`, one net. */
function tranglo(weight: Float32Array, a: Float32Array, b: Float32Array): number {
  let d = 0;
  for (let e = 0; e < E; e++) {
    let w = 0;
    for (let k = 0; k < S; k++) w += weight[k * E + e] ** 2;
    d += w * (a[e] - b[e]) ** 2;
  }
  return -d;
}

describe("stage one", () => {
  test("√w are the column norms of sim_tranglo_w", () => {
    const s = trangloScales(W[0], E);
    for (const e of [0, 5, E - 1]) expect(s[e]).toBeCloseTo(Math.hypot(...Array.from({ length: S }, (_, k) => W[0][k * E + e])), 5);
  });

  test("int8 vectors: each row's largest value is ±127 steps, every value within half a step", () => {
    const glo = rng.uniformArray(5 * E, -1, 1);
    const scales = trangloScales(W[0], E);
    const v = stageOneVectors(glo, 5, scales);
    const u = weighted(glo, 5, scales);
    const back = dequantize(v);
    for (let i = 0; i < 5; i++) {
      const row = Array.from(v.values.subarray(i * E, (i + 1) * E), Math.abs);
      expect(Math.max(...row)).toBe(127);
      for (let e = 0; e < E; e++) expect(Math.abs(back[i * E + e] - u[i * E + e])).toBeLessThanOrEqual(v.scales[i] / 2 + 1e-7);
    }
  });

  test("scores are the tranglo distance summed over the nets, queries float32 and items int8", () => {
    const [nQ, nG] = [3, 11];
    const queries = [rng.uniformArray(nQ * E, -1, 1), rng.uniformArray(nQ * E, -1, 1)];
    const items = [rng.uniformArray(nG * E, -1, 1), rng.uniformArray(nG * E, -1, 1)];
    const scales = W.map((w) => trangloScales(w, E));
    const index = stageOneIndex(items.map((g, n) => stageOneVectors(g, nG, scales[n])));
    const got = stageOneScores(queries.map((q, n) => weighted(q, nQ, scales[n])), nQ, index);
    // The reference on the items as the index holds them (int8, back in x-space).
    const held = index.nets.map((v, n) => Float32Array.from(dequantize(v), (x, j) => x / scales[n][j % E]));
    for (let r = 0; r < nQ; r++) {
      for (let i = 0; i < nG; i++) {
        const want = [0, 1].reduce((s, n) => s + tranglo(W[n], queries[n].subarray(r * E, (r + 1) * E), held[n].subarray(i * E, (i + 1) * E)), 0);
        expect(Math.abs(got[r * nG + i] - want)).toBeLessThan(1e-3 * Math.max(1, Math.abs(want)));
      }
    }
    // And close to the float32 items' (the quantization costs little).
    const exact = tranglo(W[0], queries[0].subarray(0, E), items[0].subarray(0, E)) + tranglo(W[1], queries[1].subarray(0, E), items[1].subarray(0, E));
    expect(Math.abs(got[0] - exact)).toBeLessThan(0.02 * Math.abs(exact));
  });

  test("one query set per net", () => {
    const index = stageOneIndex([stageOneVectors(new Float32Array(E), 1, trangloScales(W[0], E))]);
    expect(() => stageOneScores([new Float32Array(E), new Float32Array(E)], 1, index)).toThrow("2 query sets for 1 nets");
  });
});
