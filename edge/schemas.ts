/**
 * Request and response bodies of the edge API as valibot schemas: the validator middleware parses
 * with them and /openapi.json is generated from them. Bounds that depend only on the app's limits
 * live here; those that depend on the loaded model (vocabulary size, feature shape, gallery size)
 * are checked in app.ts once the engine is known.
 */
import * as v from "valibot";
import { EvalResultSchema, HitSchema, MAX_QUERY_TOKENS, ModelInfoSchema } from "../shared/retrieval/engine.ts";
import { SHORTLIST_DEFAULTS, type ShortlistOptions, ShortlistUsedSchema } from "../shared/retrieval/shortlist.ts";

/** The shortlist's default and maximum (shared/retrieval/shortlist.ts) are limits like the others. */
export interface EdgeLimits extends ShortlistOptions {
  /** Largest request body, bytes. */
  bodyLimit: number;
  /** Largest k of a search. */
  maxK: number;
  /** k when a search names none. */
  defaultK: number;
  /** Longest query text, UTF-16 code units. */
  maxTextLength: number;
  /** Longest token list (a loaded engine may take fewer; the app checks its `maxTokens` too). */
  maxTokens: number;
  /** Most pairs in one /v1/score request. */
  maxPairs: number;
  /** Static caps on a feature matrix before its shape is checked against the model. */
  maxRegions: number;
  maxImgDim: number;
  /**
   * Largest |value| in a feature matrix: real region features are small, and anything near
   * float32's range would overflow the engine's squared norms into Infinity/NaN.
   */
  maxFeatureMagnitude: number;
  /**
   * Most work one request may ask of the engine, in cells (shared/retrieval/cost.ts), estimated
   * before it runs; a request over it is refused with 422 and told how much less to ask for.
   */
  maxWork: number;
  /** Engine requests in hand at once, running or waiting; one more is refused with 503. */
  maxPending: number;
  /** Concurrent /v1/eval requests; one more is refused with 503. */
  maxEvals: number;
  /** Milliseconds an engine request may take; past it the answer is 504 and the work is abandoned. */
  deadlineMs: number;
}

export const DEFAULT_EDGE_LIMITS: EdgeLimits = {
  bodyLimit: 1024 * 1024,
  ...SHORTLIST_DEFAULTS,
  maxK: 100,
  defaultK: 10,
  maxTextLength: 1000,
  maxTokens: MAX_QUERY_TOKENS,
  maxPairs: 256,
  maxRegions: 256,
  maxImgDim: 4096,
  maxFeatureMagnitude: 1e6,
  // About 5 s of one wasm thread on the embedded configuration: a 117-image evaluation of a
  // 5-caption gallery, or 256 pairs of 128-token captions.
  maxWork: 40e6,
  maxPending: 16,
  maxEvals: 1,
  deadlineMs: 30_000,
};

const index = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(Number.MAX_SAFE_INTEGER));

function textField(limits: EdgeLimits) {
  return v.pipe(
    v.string(),
    v.minLength(1),
    v.maxLength(limits.maxTextLength),
    v.check((s) => s.trim().length > 0, "text must contain a non-space character"),
    v.description(
      "Query text; the loaded model's tokenizer (GET /v1/model `text`) turns it into vocabulary ids: NLTK word_tokenize of the lower-cased text for Flickr30K, MS-COCO and CC152K models; for NoW models jieba.lcut (--tokenizer jieba), WordPiece over the NoW vocabulary or the packaged tokenizer.json (bert, bpe). A model whose `text.accepts` is `tokens` (NoW bpe exported without its tokenizer.json) answers 400; text that tokenizes to no known word is a 400 naming the tokenizer.",
    ),
  );
}

function tokensField(limits: EdgeLimits) {
  return v.pipe(
    v.array(index),
    v.minLength(1),
    v.maxLength(limits.maxTokens),
    v.description("Vocabulary ids, each in [0, vocabSize) of the loaded model."),
  );
}

function featuresField(limits: EdgeLimits) {
  const m = limits.maxFeatureMagnitude;
  const value = v.pipe(v.number(), v.finite(), v.minValue(-m), v.maxValue(m));
  return v.pipe(
    v.array(v.pipe(v.array(value), v.minLength(1), v.maxLength(limits.maxImgDim))),
    v.minLength(1),
    v.maxLength(limits.maxRegions),
    v.description("Region features, shape [regions][imgDim] of the loaded model."),
  );
}

const imageField = v.pipe(index, v.description("Index of an image in the model's gallery."));

function kField(limits: EdgeLimits) {
  return v.optional(
    v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(limits.maxK), v.description("Number of results.")),
    limits.defaultK,
  );
}

/**
 * A search's or evaluation's shortlist: "all", or an integer in [0, maxShortlist]; the server's
 * default when absent. Each bad value gets its own message, with the value and the allowed set.
 */
function shortlistField(limits: EdgeLimits) {
  const max = limits.maxShortlist;
  const allowed = `"all" or an integer in [0, ${max}] (0 and "all": every item, exhaustive)`;
  return v.optional(
    v.pipe(
      v.union([v.literal("all"), v.number()], (issue) => `${issue.received} is not ${allowed}`),
      v.check((s) => s === "all" || (Number.isInteger(s) && s >= 0), (issue) => `${issue.received} is not ${allowed}`),
      v.check((s) => s === "all" || s <= max, (issue) => `${issue.received} is more than the server's maximum of ${max} (maxShortlist); ask for at most ${max}, or "all" for an exhaustive search`),
      v.description(
        `Two-stage search: the first stage (the model's distilled head, or for a model exported without one SGRAF's pooled vectors weighted by sim_tranglo_w; /v1/model gallery.firstStage says which) shortlists this many gallery items (images for text→image, captions for image→text) and the full model re-ranks them. 0 or "all": every item scored by the full model. Default: the server's (${JSON.stringify(limits.defaultShortlist)}).`,
      ),
    ),
    limits.defaultShortlist,
  );
}

const isObject = (x: unknown) => typeof x === "object" && x !== null && !Array.isArray(x);

const oneText = (q: { text?: string; tokens?: number[] }) => (q.text === undefined) !== (q.tokens === undefined);
const oneImage = (q: { image?: number; features?: number[][] }) =>
  (q.image === undefined) !== (q.features === undefined);
const ONE_TEXT = "give exactly one of text or tokens";
const ONE_IMAGE = "give exactly one of image or features";

/**
 * All request schemas for one set of limits. Each stops at its first issue (abortEarly): a
 * hostile body of a million bad numbers costs one issue, not a million.
 */
export function requestSchemas(limits: EdgeLimits) {
  const text = textField(limits);
  const tokens = tokensField(limits);
  const features = featuresField(limits);
  const k = kField(limits);
  const shortlist = shortlistField(limits);
  // A body is a JSON object: an array or a scalar is refused as such, before its keys are looked at.
  const early = <S extends v.GenericSchema>(s: S) => v.config(v.pipe(v.custom<unknown>(isObject, "the request body must be a JSON object"), s), { abortEarly: true });
  return {
    searchImages: early(
      v.pipe(
        v.strictObject({ text: v.optional(text), tokens: v.optional(tokens), k, shortlist }),
        v.check((q) => oneText(q), ONE_TEXT),
        v.description("Text→image search over the gallery. Exactly one of text or tokens."),
      ),
    ),
    searchCaptions: early(
      v.pipe(
        v.strictObject({ image: v.optional(imageField), features: v.optional(features), k, shortlist }),
        v.check((q) => oneImage(q), ONE_IMAGE),
        v.description("Image→text search over the gallery captions. Exactly one of image or features."),
      ),
    ),
    score: early(
      v.strictObject({
        pairs: v.pipe(
          v.array(
            v.pipe(
              v.strictObject({
                image: v.optional(imageField),
                features: v.optional(features),
                text: v.optional(text),
                tokens: v.optional(tokens),
              }),
              v.check((q) => oneImage(q), ONE_IMAGE),
              v.check((q) => oneText(q), ONE_TEXT),
            ),
          ),
          v.minLength(1),
          v.maxLength(limits.maxPairs),
          v.description("Image-text pairs; each has one of image/features and one of text/tokens."),
        ),
      }),
    ),
    evaluate: early(
      v.strictObject({
        limit: v.optional(
          v.pipe(v.number(), v.integer(), v.minValue(1), v.maxValue(Number.MAX_SAFE_INTEGER), v.description("Evaluate on the first `limit` gallery images.")),
        ),
        // The evaluation's own description: a number adds the two-stage recall beside the exhaustive one.
        shortlist: v.pipe(shortlistField(limits), v.description("Also report the recall of two-stage scoring with this shortlist (`twoStage`), beside the exhaustive recall; 0 or \"all\": exhaustive only. Default: the server's.")),
      }),
    ),
  };
}

export type RequestSchemas = ReturnType<typeof requestSchemas>;

// Responses: documentation only (the app builds them, so they are not parsed).

/** What /health says of the model: never asked for yet, being loaded, ready, or the last load failed. */
export const ENGINE_STATES = ["idle", "loading", "loaded", "failed"] as const;
export type EngineState = (typeof ENGINE_STATES)[number];

export const responseSchemas = {
  error: v.object({ error: v.object({ status: v.number(), message: v.string() }) }),
  health: v.object({ status: v.literal("ok"), engine: v.picklist(ENGINE_STATES) }),
  model: v.object({
    ...ModelInfoSchema.entries,
    imgDim: v.number(),
    regions: v.number(),
    vocabSize: v.number(),
    maxTokens: v.number(),
  }),
  results: v.object({ results: v.array(HitSchema), shortlist: ShortlistUsedSchema }),
  scores: v.object({ scores: v.array(v.number()) }),
  evaluate: EvalResultSchema,
};
