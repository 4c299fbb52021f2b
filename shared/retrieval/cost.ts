/**
 * What a retrieval request will cost the engine, estimated from the request alone before any work
 * is done, so that a front end can refuse one that would hold a CPU for a minute (an evaluation's
 * cost grows with the square of its images) instead of starting it.
 *
 * The unit is a "cell": one caption word set against one image region (SCAN attention) or against
 * one node of its caption's graph (SGR's reasoning, the caption's words and the global node).
 * Scoring an image against a caption of L words costs L × (regions + L + 1) cells. Encoding a query
 * caption costs ENCODE_CELLS_PER_TOKEN per word: its GRU runs one word at a time, so its time is
 * mostly per-operation overhead, which this constant converts into cells. Both were fitted on the
 * embedded configuration on one wasm thread (about 8,000 cells per millisecond, for the pairs of
 * an evaluation and the 128-word captions of /v1/score alike); a larger model costs more per cell,
 * and its server wants a lower limit (`bun run edge --max-work`).
 *
 * A two-stage search (shortlist.ts) scores its k′ shortlisted items with the full model, and every
 * gallery item with the first stage: one dot product of two E-vectors per item, which is what one
 * cell's attention logit is, so STAGE_ONE_CELLS_PER_ITEM is 1.
 *
 * Every count is one net's; the ensemble multiplies all of them by the number of nets, which the
 * limit absorbs.
 */
import type { GalleryInfo } from "./engine.ts";
import { effectiveShortlist, namesNoShortlist, type Shortlist } from "./shortlist.ts";

/** Cells of encoding one query caption, per token (see the header). */
export const ENCODE_CELLS_PER_TOKEN = 750;

/** Cells of scoring one image against one caption of `tokens` ids. */
export function pairCells(tokens: number, regions: number): number {
  return tokens * (regions + tokens + 1);
}

/** Cells of the first stage per gallery item (see the header). */
export const STAGE_ONE_CELLS_PER_ITEM = 1;

/** Mean caption length of a gallery, tokens. */
function meanTokens(g: GalleryInfo): number {
  return g.captions === 0 ? 0 : g.words / g.captions;
}

/** /v1/score: each pair's caption encoded, then scored against its image. `tokens`: per pair. */
export function scoreCells(tokens: readonly number[], regions: number): number {
  return tokens.reduce((sum, t) => sum + t * ENCODE_CELLS_PER_TOKEN + pairCells(t, regions), 0);
}

/** Items of `items` that a search with `shortlist` scores with the full model, and its first stage's cells. */
function searchedItems(items: number, shortlist: Shortlist): { scored: number; firstStage: number } {
  const used = effectiveShortlist(shortlist, items);
  return used === "all" ? { scored: items, firstStage: 0 } : { scored: used, firstStage: items * STAGE_ONE_CELLS_PER_ITEM };
}

/**
 * /v1/search/images: the query caption encoded, then scored against every gallery image, or
 * against every image by the first stage and against the shortlist by the full model.
 */
export function searchImagesCells(tokens: number, g: GalleryInfo, regions: number, shortlist: Shortlist = "all"): number {
  const { scored, firstStage } = searchedItems(g.images, shortlist);
  return tokens * ENCODE_CELLS_PER_TOKEN + firstStage + scored * pairCells(tokens, regions);
}

/** /v1/search/captions: the query image (cheap to encode) scored against every gallery caption, or the shortlist's. */
export function searchCaptionsCells(g: GalleryInfo, regions: number, shortlist: Shortlist = "all"): number {
  const { scored, firstStage } = searchedItems(g.captions, shortlist);
  return firstStage + scored * pairCells(meanTokens(g), regions);
}

/**
 * /v1/eval over the first `images` gallery images: every image against every one of their
 * captions; with a shortlist, the first stage of every pair as well (its two-stage recall is read
 * from the same full scores).
 */
export function evalCells(images: number, g: GalleryInfo, regions: number, shortlist: Shortlist = "all"): number {
  const first = namesNoShortlist(shortlist) ? 0 : STAGE_ONE_CELLS_PER_ITEM;
  return images * images * g.perCaptions * (pairCells(meanTokens(g), regions) + first);
}

/** The most images an evaluation may take within `maxCells` (0 when not even one fits). */
export function maxEvalImages(maxCells: number, g: GalleryInfo, regions: number, shortlist: Shortlist = "all"): number {
  const perImage2 = evalCells(1, g, regions, shortlist);
  let n = Math.min(g.images, Math.floor(Math.sqrt(maxCells / Math.max(perImage2, 1e-9))));
  while (n > 0 && evalCells(n, g, regions, shortlist) > maxCells) n--; // the square root may round up
  return n;
}

/**
 * Tokens a text query makes at most, before it is tokenized: every token takes at least one
 * character, plus `<start>` and `<end>`; never more than the engine takes.
 */
export function textTokensBound(text: string, maxTokens: number): number {
  return Math.min(maxTokens, text.length + 2);
}
