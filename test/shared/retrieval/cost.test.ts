/**
 * The cost model of retrieval requests (shared/retrieval/cost.ts): its formulas on small numbers
 * worked by hand, and the bounds it derives for the edge's messages.
 */
import { describe, expect, test } from "bun:test";
import { ENCODE_CELLS_PER_TOKEN, STAGE_ONE_CELLS_PER_ITEM, evalCells, maxEvalImages, pairCells, scoreCells, searchCaptionsCells, searchImagesCells, textTokensBound } from "../../../shared/retrieval/cost";
import type { GalleryInfo } from "../../../shared/retrieval/engine";

// 100 images, 5 captions each, 12 tokens per caption.
const GALLERY: GalleryInfo = { images: 100, captions: 500, perCaptions: 5, words: 6000 };

describe("cost of a request, in cells", () => {
  test("one pair: words against regions, and against the words and the global node", () => {
    expect(pairCells(12, 36)).toBe(12 * 36 + 12 * 13);
    expect(pairCells(128, 36)).toBe(128 * (36 + 129));
  });

  test("score: each pair's encoding and its one image", () => {
    expect(scoreCells([3, 128], 36)).toBe((3 + 128) * ENCODE_CELLS_PER_TOKEN + pairCells(3, 36) + pairCells(128, 36));
    expect(scoreCells([], 36)).toBe(0);
  });

  test("searches: the gallery's images or captions against the query", () => {
    expect(searchImagesCells(10, GALLERY, 36)).toBe(10 * ENCODE_CELLS_PER_TOKEN + 100 * pairCells(10, 36));
    expect(searchCaptionsCells(GALLERY, 36)).toBe(500 * pairCells(12, 36));
  });

  test("a shortlist: its items by the full model, every item by the first stage; exhaustive when it covers the gallery", () => {
    expect(searchImagesCells(10, GALLERY, 36, 16)).toBe(10 * ENCODE_CELLS_PER_TOKEN + 100 * STAGE_ONE_CELLS_PER_ITEM + 16 * pairCells(10, 36));
    expect(searchCaptionsCells(GALLERY, 36, 64)).toBe(500 * STAGE_ONE_CELLS_PER_ITEM + 64 * pairCells(12, 36));
    for (const all of ["all", 0, 100, 5000] as const) expect(searchImagesCells(10, GALLERY, 36, all)).toBe(searchImagesCells(10, GALLERY, 36));
    expect(searchCaptionsCells(GALLERY, 36, 500)).toBe(searchCaptionsCells(GALLERY, 36));
    // An evaluation with a shortlist computes the full matrix and the first stage of every pair.
    expect(evalCells(10, GALLERY, 36, 8)).toBe(10 * 10 * 5 * (pairCells(12, 36) + STAGE_ONE_CELLS_PER_ITEM));
    expect(maxEvalImages(evalCells(10, GALLERY, 36, 8), GALLERY, 36, 8)).toBe(10);
  });

  test("evaluation grows with the square of its images", () => {
    expect(evalCells(10, GALLERY, 36)).toBe(10 * 10 * 5 * pairCells(12, 36));
    expect(evalCells(40, GALLERY, 36)).toBe(16 * evalCells(10, GALLERY, 36));
  });

  test("the default limit admits the probe's worst requests on the embedded model and refuses 400 images", () => {
    const limit = 40e6;
    expect(scoreCells(Array(256).fill(128), 36)).toBeLessThanOrEqual(limit);
    expect(evalCells(100, GALLERY, 36)).toBeLessThanOrEqual(limit);
    expect(evalCells(400, { ...GALLERY, images: 400, captions: 2000, words: 24000 }, 36)).toBeGreaterThan(limit);
  });
});

describe("bounds for the messages", () => {
  test("maxEvalImages is the largest count within the limit, at most the gallery", () => {
    for (const limit of [0, 1, 14_999, 15_000, 1e6, 2.9e7, 1e12]) {
      const n = maxEvalImages(limit, GALLERY, 36);
      expect(n).toBeLessThanOrEqual(GALLERY.images);
      if (n > 0) expect(evalCells(n, GALLERY, 36)).toBeLessThanOrEqual(limit);
      if (n < GALLERY.images) expect(evalCells(n + 1, GALLERY, 36)).toBeGreaterThan(limit);
    }
  });

  test("text tokens: at most one per character plus <start> and <end>, at most the engine's", () => {
    expect(textTokensBound("a dog", 128)).toBe(7);
    expect(textTokensBound("x".repeat(1000), 128)).toBe(128);
  });
});
