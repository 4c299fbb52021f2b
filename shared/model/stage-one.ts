/**
 * The first stage of two-stage retrieval (issue 13): a cheap score from what SGRAF already
 * computes, with which an engine shortlists the gallery items that the full model then re-ranks.
 * The official code has no such stage: `shard_attn_scores` scores every pair with the full model.
 *
 * The score is `tranglo`: minus the squared difference of the pooled image vector (VisualSA) and
 * the pooled caption vector (TextSA), weighted per dimension e by w_e = Σ_k sim_tranglo_w[k, e]²,
 * how much that dimension's squared difference feeds SGRAF's global alignment
 * (`sim_glo = l2norm(sim_tranglo_w((img_glo - cap_glo)²))`), summed over the nets of an ensemble.
 * benchmarks/shortlist.ts measured it against the cosine of the pooled vectors on the quick model
 * (docs/performance.md): of the full model's top-1, it kept as much text→image (84.2% against
 * 83.4% at k′ = 64 of 100 images) or less (55.8% against 59.4% at k′ = 128 of 400), and more
 * image→text (75.0% against 64.5% at 128 of 400): more of both directions together.
 *
 * With u = √w ⊙ x, -Σ_e w_e (a_e - b_e)² = 2 u_a·u_b - |u_a|² - |u_b|²: one dot product per pair
 * once each item's |u|² is known. Gallery vectors u are kept int8 with one scale per vector
 * (a quarter of float32's bytes: what stays resident when region encodings do not); a query's u
 * stays float32.
 */
import type { ParamStore } from "./params";

/** Name of the first-stage score, as searches report it. */
export const STAGE_ONE = "tranglo";

/** The weight whose squared column norms weigh the pooled vectors' difference. */
export const TRANGLO_WEIGHT = "sim_enc.sim_tranglo_w.weight";

/** One net's u-vectors of a set of gallery items, int8 [count, dim] with a scale per row. */
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

/** Pooled vectors [count, E] as int8 u-vectors, each row scaled so that its largest |value| is 127. */
export function stageOneVectors(glo: Float32Array, count: number, scales: Float32Array): StageOneVectors {
  const E = scales.length;
  const u = weighted(glo, count, scales);
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

/** A gallery side's vectors of every net, with each item's |u|² summed over the nets. */
export interface StageOneIndex {
  nets: StageOneVectors[];
  sqnorms: Float32Array;
}

export function stageOneIndex(nets: StageOneVectors[]): StageOneIndex {
  const count = nets[0]?.count ?? 0;
  const sqnorms = new Float32Array(count);
  for (const v of nets) {
    if (v.count !== count) throw new RangeError(`stageOneIndex: nets hold ${v.count} and ${count} items`);
    for (let i = 0; i < count; i++) {
      let d = 0;
      for (let e = 0; e < v.dim; e++) d += v.values[i * v.dim + e] ** 2;
      sqnorms[i] += d * v.scales[i] ** 2;
    }
  }
  return { nets, sqnorms };
}

/**
 * Stage-one scores [rows, count] of `rows` queries against an index: for query r and item i,
 * Σ_nets -|u_r - u_i|² = Σ_nets (2 u_r·u_i - |u_r|²) - |u_i|², with each net's query u-vectors
 * given float32 [rows, E] (`weighted`, or `dequantize` of the other gallery side). Exact over the
 * whole index: one pass over its int8 rows per query.
 */
export function stageOneScores(queries: Float32Array[], rows: number, index: StageOneIndex): Float32Array {
  if (queries.length !== index.nets.length) throw new RangeError(`stageOneScores: ${queries.length} query sets for ${index.nets.length} nets`);
  const count = index.sqnorms.length;
  const out = new Float32Array(rows * count);
  for (let r = 0; r < rows; r++) {
    const row = out.subarray(r * count, (r + 1) * count);
    row.set(index.sqnorms);
    for (let i = 0; i < count; i++) row[i] = -row[i];
    index.nets.forEach((v, n) => {
      const E = v.dim;
      const q = queries[n].subarray(r * E, (r + 1) * E);
      let qq = 0;
      for (let e = 0; e < E; e++) qq += q[e] * q[e];
      const { values, scales } = v;
      for (let i = 0; i < count; i++) {
        let d = 0;
        const o = i * E;
        for (let e = 0; e < E; e++) d += q[e] * values[o + e];
        row[i] += 2 * d * scales[i] - qq;
      }
    });
  }
  return out;
}
