/**
 * Two-stage search (issue 13): a shortlist of k′ gallery items by the first-stage score
 * (shared/model/stage-one.ts), then the full SGRAF score on the shortlist only. k′ counts the items
 * a search ranks: images for text→image, captions for image→text (as ALBEF's `k_test`). `0` or
 * `"all"` is the exhaustive search, every item scored by the full model; so is any k′ at least the
 * gallery's size.
 */
import * as v from "valibot";
import { STAGE_ONES, type StageOneName } from "../model/stage-one";

/** A requested shortlist size: items re-ranked by the full model, or "all" (0 means "all" too). */
export type Shortlist = number | "all";

export interface ShortlistOptions {
  /** The shortlist of a search or evaluation that names none. */
  defaultShortlist: Shortlist;
  /** Largest numeric shortlist a request may name ("all" is always allowed; its work is bounded by the work limit). */
  maxShortlist: number;
}

/**
 * Exhaustive unless asked: two-stage search is a choice a server or a request makes, knowing its
 * recall cost (/v1/eval reports both). With a distilled head it is small (docs/performance.md);
 * with the tranglo first stage of a package without one, large.
 */
export const SHORTLIST_DEFAULTS: ShortlistOptions = { defaultShortlist: "all", maxShortlist: 1024 };

/**
 * The shortlist `bun run edge --shortlist auto` (its default) gives a model whose first stage is a
 * distilled head: 128, ALBEF/BLIP's Flickr k_test, where the head kept text→image R@10 within a
 * point of exhaustive (docs/performance.md); a model without a head stays exhaustive.
 */
export const AUTO_SHORTLIST = 128;

/** The default shortlist `auto` stands for, for a model whose first stage is `stage` (none without a gallery). */
export function autoShortlist(stage: StageOneName | undefined, maxShortlist: number): Shortlist {
  return stage === "distilled" ? Math.min(AUTO_SHORTLIST, maxShortlist) || "all" : "all";
}

/** What a search used: the shortlist size, or "all"; the first stage; the items the full model scored. */
export const ShortlistUsedSchema = v.object({
  used: v.union([v.number(), v.literal("all")]),
  stage: v.nullable(v.picklist(STAGE_ONES)),
  scored: v.number(),
});
export type ShortlistUsed = v.InferOutput<typeof ShortlistUsedSchema>;

/** Whether a requested shortlist names none: "all" or 0, the exhaustive search. */
export function namesNoShortlist(requested: Shortlist): requested is "all" | 0 {
  return requested === "all" || requested === 0;
}

/** The shortlist a search of `items` gallery items really runs: "all" for 0, "all" and any k′ ≥ items. */
export function effectiveShortlist(requested: Shortlist, items: number): Shortlist {
  return namesNoShortlist(requested) || requested >= items ? "all" : requested;
}

/** The report of a search of `items` items with shortlist `requested` and first stage `stage`. */
export function shortlistUsed(requested: Shortlist, items: number, stage: StageOneName): ShortlistUsed {
  const used = effectiveShortlist(requested, items);
  return used === "all" ? { used, stage: null, scored: items } : { used, stage, scored: used };
}

/**
 * Indices of the k largest values with their values, best first; ties go to the lower index.
 * A min-heap of the best k so far: n log k, for galleries far larger than k.
 */
export function topK(values: ArrayLike<number>, k: number): Array<[number, number]> {
  const n = values.length;
  const m = Math.max(0, Math.min(k, n));
  // worse(a, b): a ranks below b.
  const worse = (a: number, b: number) => values[a] < values[b] || (values[a] === values[b] && a > b);
  const heap = new Int32Array(m); // heap[0] is the worst of the kept
  let size = 0;
  const down = (at: number) => {
    for (;;) {
      const l = 2 * at + 1;
      const r = l + 1;
      let w = at;
      if (l < size && worse(heap[l], heap[w])) w = l;
      if (r < size && worse(heap[r], heap[w])) w = r;
      if (w === at) return;
      [heap[at], heap[w]] = [heap[w], heap[at]];
      at = w;
    }
  };
  for (let i = 0; i < n && m > 0; i++) {
    if (size < m) {
      let at = size++;
      heap[at] = i;
      while (at > 0) {
        const up = (at - 1) >> 1;
        if (!worse(heap[at], heap[up])) break;
        [heap[at], heap[up]] = [heap[up], heap[at]];
        at = up;
      }
    } else if (worse(heap[0], i)) {
      heap[0] = i;
      down(0);
    }
  }
  return Array.from(heap.subarray(0, size))
    .sort((a, b) => (worse(a, b) ? 1 : worse(b, a) ? -1 : 0))
    .map((i) => [i, values[i]]);
}

/**
 * The scores a two-stage search ranks by, for every query of an evaluation: `full` and `first` are
 * [images, captions] (full-model and first-stage scores of every pair); each query (a caption, a
 * column, for text→image; an image, a row, for image→text) keeps the full score of its k′
 * first-stage best, and every other item falls below all full scores, in first-stage order. The
 * official recall of the result is the recall of a two-stage search that lists its shortlist
 * re-ranked, then the rest.
 */
export function twoStageScores(full: Float32Array, first: Float32Array, images: number, captions: number, k: number, direction: "t2i" | "i2t"): Float32Array {
  let fullMin = Infinity;
  let firstMax = -Infinity;
  for (let i = 0; i < full.length; i++) {
    fullMin = Math.min(fullMin, full[i]);
    firstMax = Math.max(firstMax, first[i]);
  }
  const below = fullMin - firstMax - 1;
  const out = new Float32Array(full.length);
  for (let i = 0; i < out.length; i++) out[i] = first[i] + below;
  const queries = direction === "t2i" ? captions : images;
  const items = direction === "t2i" ? images : captions;
  const at = direction === "t2i" ? (q: number, j: number) => j * captions + q : (q: number, j: number) => q * captions + j;
  const column = new Float32Array(items);
  for (let q = 0; q < queries; q++) {
    for (let j = 0; j < items; j++) column[j] = first[at(q, j)];
    for (const [j] of topK(column, k)) out[at(q, j)] = full[at(q, j)];
  }
  return out;
}
