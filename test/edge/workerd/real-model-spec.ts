/**
 * The tiny exported model of the workerd test and the requests sent to it, shared by the test
 * (which sends them to workerd) and by real-model.ts (which builds the model and answers them in
 * process under Bun). Plain data: importing it loads no tfjs.
 */

/** Model dimensions (official run.py flag names); vocab_size comes from WORDS. */
export const DIMS = { img_dim: 8, embed_size: 8, word_dim: 6, sim_dim: 4, proj_dim: 3 } as const;
export const WORDS = ["a", "dog", "cat", "man", "woman", "runs", "sits", "on", "the", "grass", "red", "ball", "with", "bench"];
export const GALLERY = { images: 6, perCaptions: 5 } as const;
export const SEED = 20240611;
/** The regions of an official feature file; the edge takes exactly this many rows. */
const REGIONS = 36;

/** A deterministic feature matrix [36][img_dim] for queries by features (no RNG needed). */
export function queryFeatures(salt: number): number[][] {
  return Array.from({ length: REGIONS }, (_, r) =>
    Array.from({ length: DIMS.img_dim }, (_, d) => Math.round(1000 * Math.abs(Math.sin(salt + 0.37 * r + 1.3 * d))) / 1000),
  );
}

export interface SpecRequest {
  /** A name for failure messages. */
  name: string;
  method: "GET" | "POST";
  path: string;
  body?: unknown;
}

export const REQUESTS: SpecRequest[] = [
  { name: "model", method: "GET", path: "/v1/model" },
  { name: "search images by text", method: "POST", path: "/v1/search/images", body: { text: "A dog runs on the grass.", k: 4 } },
  { name: "search images, all", method: "POST", path: "/v1/search/images", body: { text: "the red ball", k: 100 } },
  { name: "search images by tokens", method: "POST", path: "/v1/search/images", body: { tokens: [1, 7, 12, 2], k: 3 } },
  { name: "search captions of image 0", method: "POST", path: "/v1/search/captions", body: { image: 0, k: 7 } },
  { name: "search captions by features", method: "POST", path: "/v1/search/captions", body: { features: queryFeatures(1), k: 5 } },
  // Two-stage: the first-stage vectors the export wrote, read by the Worker from its assets.
  { name: "search images, two-stage", method: "POST", path: "/v1/search/images", body: { text: "A dog runs on the grass.", k: 3, shortlist: 3 } },
  { name: "search captions, two-stage", method: "POST", path: "/v1/search/captions", body: { image: 1, k: 4, shortlist: 6 } },
  {
    name: "score",
    method: "POST",
    path: "/v1/score",
    body: {
      pairs: [
        { image: 0, text: "a man sits on the bench" },
        { image: 5, tokens: [1, 4, 2] },
        { features: queryFeatures(2), text: "a cat with a red ball" },
      ],
    },
  },
  { name: "eval", method: "POST", path: "/v1/eval", body: {} },
  { name: "eval, first 3 images", method: "POST", path: "/v1/eval", body: { limit: 3 } },
  { name: "eval with a shortlist", method: "POST", path: "/v1/eval", body: { shortlist: 2 } },
  // Bad bodies: 400 with the field named, from the same validation in both runtimes.
  { name: "search images without text", method: "POST", path: "/v1/search/images", body: { k: 3 } },
  { name: "search captions, image out of range", method: "POST", path: "/v1/search/captions", body: { image: GALLERY.images, k: 3 } },
  { name: "search images, shortlist over the maximum", method: "POST", path: "/v1/search/images", body: { text: "the red ball", shortlist: 100_000 } },
];

/** What real-model.ts prints: the model it wrote and the in-process answers, in REQUESTS order. */
export interface ReferenceRun {
  config: Record<string, unknown>;
  modelDir: string;
  answers: Array<{ status: number; body: unknown }>;
}
