/**
 * The first stage (shared/model/stage-one.ts) against its definition written out directly:
 * -Σ_nets Σ_e w_e (a_e - b_e)² with w the squared column norms of sim_tranglo_w, on random
 * vectors; the int8 vectors within half a step of their float values.
 */
import { describe, expect, test } from "bun:test";
import { Random } from "../../../shared/random";
import { dequantize, distilledStage, headFeatures, quantizeVectors, stageOneIndex, stageOneScores, trangloScales, weighted } from "../../../shared/model/stage-one";

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
    const v = quantizeVectors(weighted(glo, 5, scales), 5, E);
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
    const index = stageOneIndex(items.map((g, n) => quantizeVectors(weighted(g, nG, scales[n]), nG, E)));
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
    const index = stageOneIndex([quantizeVectors(new Float32Array(E), 1, E)]);
    expect(() => stageOneScores([new Float32Array(E), new Float32Array(E)], 1, index)).toThrow("2 query sets for 1 nets");
  });
});

describe("the distilled first stage", () => {
  const D = 5;
  const images = { count: 3, embed: E, emb: rng.uniformArray(3 * 36 * E, -1, 1), glo: rng.uniformArray(3 * E, -1, 1) };
  const lengths = Int32Array.from([2, 4, 1, 3]);
  const offsets = Int32Array.from([0, 2, 6, 7]);
  const captions = { count: 4, embed: E, lengths, offsets, emb: rng.uniformArray(10 * E, -1, 1), glo: rng.uniformArray(4 * E, -1, 1) };
  const head = { dim: D, nets: [0, 1].map(() => ({ images: rng.uniformArray(2 * E * D, -1, 1), captions: rng.uniformArray(2 * E * D, -1, 1) })) };

  /** [glo, mean of the item's `n` embeddings from row `first`] projected by W [2E, D], written out. */
  function projected(glo: Float32Array, emb: Float32Array, i: number, first: number, n: number, W: Float32Array): number[] {
    const x = Array.from({ length: 2 * E }, (_, f) => (f < E ? glo[i * E + f] : Array.from({ length: n }, (_, w) => emb[(first + w) * E + f - E]).reduce((a, b) => a + b, 0) / n));
    return Array.from({ length: D }, (_, d) => x.reduce((s, v, f) => s + v * W[f * D + d], 0));
  }

  test("features are the pooled vector and the mean of the item's 36 regions or its words", () => {
    const f = headFeatures("captions", captions);
    expect(f.length).toBe(4 * 2 * E);
    for (const e of [0, 3, E - 1]) {
      expect(f[1 * 2 * E + e]).toBe(captions.glo[1 * E + e]);
      const mean = [2, 3, 4, 5].reduce((s, w) => s + captions.emb[w * E + e], 0) / 4;
      expect(f[1 * 2 * E + E + e]).toBeCloseTo(mean, 5);
    }
    const g = headFeatures("images", images);
    const mean = Array.from({ length: 36 }, (_, r) => images.emb[(2 * 36 + r) * E + 7]).reduce((a, b) => a + b, 0) / 36;
    expect(g[2 * 2 * E + E + 7]).toBeCloseTo(mean, 5);
  });

  test("scores are the dot products of the projections, summed over the nets, within int8 rounding", () => {
    const stage = distilledStage(head);
    expect([stage.name, stage.metric, stage.dim]).toEqual(["distilled", "dot", D]);
    const index = stageOneIndex([0, 1].map((n) => quantizeVectors(stage.vectors(n, "images", images), 3, D)), "dot");
    const got = stageOneScores([0, 1].map((n) => stage.vectors(n, "captions", captions)), 4, index); // [4 captions, 3 images]
    for (let c = 0; c < 4; c++)
      for (let i = 0; i < 3; i++) {
        let want = 0;
        let bound = 0;
        for (let n = 0; n < 2; n++) {
          const u = projected(images.glo, images.emb, i, i * 36, 36, head.nets[n].images);
          const v = projected(captions.glo, captions.emb, c, offsets[c], lengths[c], head.nets[n].captions);
          want += u.reduce((s, x, d) => s + x * v[d], 0);
          // Each int8 value of u is within half a step (max |u| / 254) of its float.
          bound += (Math.max(...u.map(Math.abs)) / 254) * v.reduce((s, x) => s + Math.abs(x), 0);
        }
        expect(Math.abs(got[c * 3 + i] - want)).toBeLessThanOrEqual(bound * 1.001 + 1e-5);
      }
    // The dot index adds no squared norms.
    expect(Array.from(index.sqnorms)).toEqual([0, 0, 0]);
  });
});
