/**
 * The first stage of two-stage retrieval (issue 13): a cheap score with which an engine shortlists
 * the gallery items that the full model then re-ranks. The official code has no such stage:
 * `shard_attn_scores` scores every pair with the full model.
 *
 * Two first stages, each one dot product per (query, item) over int8 item vectors:
 *
 * - `distilled` (when the package has a head, which exports write by default): per net, two learned
 *   projections (a head) of each side's features, [pooled vector (VisualSA / TextSA), mean of the
 *   region / word embeddings] (2E values), to D dimensions; the score is the dot product of the
 *   image's and the caption's projections, summed over the nets. trainer/stage-one-head.ts fits the
 *   head after training, to the full model's own scores (distillation: no labels, so the noisy
 *   pairs do not matter), leaving the SGRAF nets untouched.
 * - `tranglo` (packages without a head): minus the squared difference of the pooled image and
 *   caption vectors, weighted per dimension e by w_e = Σ_k sim_tranglo_w[k, e]², how much that
 *   dimension's squared difference feeds SGRAF's global alignment
 *   (`sim_glo = l2norm(sim_tranglo_w((img_glo - cap_glo)²))`), summed over the nets. With
 *   u = √w ⊙ x, -Σ_e w_e (a_e - b_e)² = 2 u_a·u_b - |u_a|² - |u_b|²: one dot product per pair once
 *   each item's |u|² is known.
 *
 * benchmarks/shortlist.ts measures both against the full model (docs/performance.md): tranglo
 * keeps little of its ranking (text→image R@10 95.3 → 53.9 at k′ = 128 of 400 images on the quick
 * model), the distilled head nearly all of it.
 *
 * Gallery vectors are kept int8 with one scale per vector (a quarter of float32's bytes: what
 * stays resident when region encodings do not); a query's vector stays float32.
 */
import { REGIONS } from "./config";
import type { EncodedCaptions, EncodedImages } from "./inference";
import type { ParamStore } from "./params";

/** Names of the first-stage scores, as searches report them. */
export const STAGE_ONES = ["distilled", "tranglo"] as const;
export type StageOneName = (typeof STAGE_ONES)[number];

/** How a first stage compares vectors: minus the squared distance, or the dot product. */
export type StageOneMetric = "distance" | "dot";

export type Side = "images" | "captions";

/**
 * A learned first stage: per net (package order) and side, a projection [2E, dim] (row-major) of
 * the side's features (headFeatures) to `dim` values.
 */
export interface StageOneHead {
  dim: number;
  nets: Array<Record<Side, Float32Array>>;
}

/** What a first stage computes: each side's float32 vectors [count, dim] of encoded items, per net. */
export interface FirstStage {
  name: StageOneName;
  metric: StageOneMetric;
  dim: number;
  vectors(net: number, side: Side, enc: EncodedImages | EncodedCaptions): Float32Array;
}

/** The weight whose squared column norms weigh the pooled vectors' difference. */
export const TRANGLO_WEIGHT = "sim_enc.sim_tranglo_w.weight";

/** One net's first-stage vectors of a set of gallery items, int8 [count, dim] with a scale per row. */
export interface StageOneVectors {
  count: number;
  dim: number;
  values: Int8Array;
  scales: Float32Array;
}

/** √w per dimension: the column norms of sim_tranglo_w, [S, E] as PyTorch stores a Linear's weight. */
export function trangloScales(weight: Float32Array, embed: number): Float32Array {
  const S = weight.length / embed;
  const out = new Float32Array(embed);
  for (let k = 0; k < S; k++) for (let e = 0; e < embed; e++) out[e] += weight[k * embed + e] ** 2;
  for (let e = 0; e < embed; e++) out[e] = Math.sqrt(out[e]);
  return out;
}

/** A net's √w, read back asynchronously (the engine also runs on WebGPU). */
export async function netTrangloScales(p: ParamStore): Promise<Float32Array> {
  return trangloScales((await p.get(TRANGLO_WEIGHT).data()) as Float32Array, p.config.embed_size);
}

/** u = √w ⊙ x of `count` pooled vectors [count, E], float32. */
export function weighted(glo: Float32Array, count: number, scales: Float32Array): Float32Array {
  const E = scales.length;
  const out = new Float32Array(count * E);
  for (let i = 0; i < count; i++) for (let e = 0; e < E; e++) out[i * E + e] = glo[i * E + e] * scales[e];
  return out;
}

/** Float32 vectors [count, E] as int8, each row scaled so that its largest |value| is 127. */
export function quantizeVectors(u: Float32Array, count: number, E: number): StageOneVectors {
  const values = new Int8Array(count * E);
  const rowScales = new Float32Array(count);
  for (let i = 0; i < count; i++) {
    let max = 0;
    for (let e = 0; e < E; e++) max = Math.max(max, Math.abs(u[i * E + e]));
    const s = max > 0 ? max / 127 : 1;
    rowScales[i] = s;
    for (let e = 0; e < E; e++) values[i * E + e] = Math.round(u[i * E + e] / s);
  }
  return { count, dim: E, values, scales: rowScales };
}

/** The first `n` items of a set (views, no copy): the part of a gallery an evaluation limited to its first images uses. */
export function firstItems(v: StageOneVectors, n: number): StageOneVectors {
  return { count: n, dim: v.dim, values: v.values.subarray(0, n * v.dim), scales: v.scales.subarray(0, n) };
}

/** The float32 u-vectors an int8 set stands for. */
export function dequantize(v: StageOneVectors): Float32Array {
  const out = new Float32Array(v.values.length);
  for (let i = 0; i < v.count; i++) for (let e = 0; e < v.dim; e++) out[i * v.dim + e] = v.values[i * v.dim + e] * v.scales[i];
  return out;
}

/**
 * A gallery side's vectors of every net and the metric that compares them; for the distance, each
 * item's |u|² summed over the nets (zero for the dot product).
 */
export interface StageOneIndex {
  nets: StageOneVectors[];
  metric: StageOneMetric;
  sqnorms: Float32Array;
}

export function stageOneIndex(nets: StageOneVectors[], metric: StageOneMetric = "distance"): StageOneIndex {
  const count = nets[0]?.count ?? 0;
  const sqnorms = new Float32Array(count);
  for (const v of nets) {
    if (v.count !== count) throw new RangeError(`stageOneIndex: nets hold ${v.count} and ${count} items`);
    if (metric === "dot") continue;
    for (let i = 0; i < count; i++) {
      let d = 0;
      for (let e = 0; e < v.dim; e++) d += v.values[i * v.dim + e] ** 2;
      sqnorms[i] += d * v.scales[i] ** 2;
    }
  }
  return { nets, metric, sqnorms };
}

/**
 * Stage-one scores [rows, count] of `rows` queries against an index: for query r and item i,
 * Σ_nets u_r·u_i (dot), or Σ_nets -|u_r - u_i|² = Σ_nets (2 u_r·u_i - |u_r|²) - |u_i|² (distance),
 * with each net's query vectors given float32 [rows, dim] (FirstStage.vectors, or `dequantize` of
 * the other gallery side). Exact over the whole index: one pass over its int8 rows per query.
 */
export function stageOneScores(queries: Float32Array[], rows: number, index: StageOneIndex): Float32Array {
  if (queries.length !== index.nets.length) throw new RangeError(`stageOneScores: ${queries.length} query sets for ${index.nets.length} nets`);
  const count = index.sqnorms.length;
  const dot = index.metric === "dot";
  const out = new Float32Array(rows * count);
  for (let r = 0; r < rows; r++) {
    const row = out.subarray(r * count, (r + 1) * count);
    row.set(index.sqnorms);
    for (let i = 0; i < count; i++) row[i] = -row[i];
    index.nets.forEach((v, n) => {
      const E = v.dim;
      const q = queries[n].subarray(r * E, (r + 1) * E);
      let qq = 0;
      if (!dot) for (let e = 0; e < E; e++) qq += q[e] * q[e];
      const twice = dot ? 1 : 2;
      const { values, scales } = v;
      for (let i = 0; i < count; i++) {
        let d = 0;
        const o = i * E;
        for (let e = 0; e < E; e++) d += q[e] * values[o + e];
        row[i] += twice * d * scales[i] - qq;
      }
    });
  }
  return out;
}

/** The tranglo first stage of nets whose √w (netTrangloScales) are `scales`. */
export function trangloStage(scales: Float32Array[]): FirstStage {
  return { name: "tranglo", metric: "distance", dim: scales[0]?.length ?? 0, vectors: (n, _side, enc) => weighted(enc.glo, enc.count, scales[n]) };
}

/** The distilled first stage of a head. */
export function distilledStage(head: StageOneHead): FirstStage {
  return { name: "distilled", metric: "dot", dim: head.dim, vectors: (n, side, enc) => project(headFeatures(side, enc), enc.count, head.nets[n][side], head.dim) };
}

/**
 * A side's head features [count, 2E]: each item's pooled vector, then the mean of its region
 * embeddings (images, 36 each) or word embeddings (captions, their lengths).
 */
export function headFeatures(side: Side, enc: EncodedImages | EncodedCaptions): Float32Array {
  const E = enc.embed;
  const out = new Float32Array(enc.count * 2 * E);
  for (let i = 0; i < enc.count; i++) {
    const o = i * 2 * E;
    out.set(enc.glo.subarray(i * E, (i + 1) * E), o);
    const [first, n] = side === "images" ? [i * REGIONS, REGIONS] : [(enc as EncodedCaptions).offsets[i], (enc as EncodedCaptions).lengths[i]];
    for (let w = 0; w < n; w++) {
      const r = (first + w) * E;
      for (let e = 0; e < E; e++) out[o + E + e] += enc.emb[r + e];
    }
    if (n > 0) for (let e = 0; e < E; e++) out[o + E + e] /= n;
  }
  return out;
}

/** x [count, F] times W [F, dim]. */
export function project(x: Float32Array, count: number, W: Float32Array, dim: number): Float32Array {
  const F = W.length / dim;
  const out = new Float32Array(count * dim);
  for (let i = 0; i < count; i++) {
    const row = out.subarray(i * dim, (i + 1) * dim);
    for (let f = 0; f < F; f++) {
      const a = x[i * F + f];
      if (a === 0) continue;
      const w = W.subarray(f * dim, (f + 1) * dim);
      for (let d = 0; d < dim; d++) row[d] += a * w[d];
    }
  }
  return out;
}
