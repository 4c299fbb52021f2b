/**
 * The paper-size model of workerd-paper.test.ts and the requests sent to it, shared by the test
 * (workerd) and paper-model.ts (in process under Bun). Plain data: importing it loads no tfjs.
 */

export const PAPER = { images: 1000, vocabSize: 8481, shortlist: 128 } as const;

/** A caption's token ids: `<start>` (1), words, `<end>` (2), ids drawn over the whole vocabulary. */
function tokens(salt: number, words: number): number[] {
  return [1, ...Array.from({ length: words }, (_, i) => 4 + ((salt * 7919 + i * 104729) % (PAPER.vocabSize - 4))), 2];
}

export const PAPER_REQUESTS: Array<{ name: string; path: string; body: Record<string, unknown> }> = [
  { name: "text→image, 12 words", path: "/v1/search/images", body: { tokens: tokens(1, 12), k: 10, shortlist: PAPER.shortlist } },
  { name: "text→image, 7 words", path: "/v1/search/images", body: { tokens: tokens(2, 7), k: 10, shortlist: PAPER.shortlist } },
  { name: "text→image, 15 words", path: "/v1/search/images", body: { tokens: tokens(3, 15), k: 10, shortlist: PAPER.shortlist } },
  { name: "image→text, gallery image 17", path: "/v1/search/captions", body: { image: 17, k: 5, shortlist: PAPER.shortlist } },
];
