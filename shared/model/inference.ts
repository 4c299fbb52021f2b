/**
 * Evaluation-mode encoding and similarity at scale (the official `encode_data` and
 * `shard_attn_scores`). The image side (region embeddings and VisualSA) is computed once per image,
 * the caption side (word embeddings and TextSA) once per caption; the pairwise part then scores a
 * shard of images against a shard of captions in a few large operations, with the shard size
 * chosen so that its largest intermediates fit a memory budget.
 *
 * Every function that reads values back from the backend is written once, as a generator that
 * yields each tensor it needs read (a `Readback`), and comes in two forms: synchronous (`dataSync`:
 * the trainer, on the CPU-side backends) and `…Async` (`await data()`: the retrieval engine, which
 * also runs on WebGPU in the browser, where a synchronous readback stalls the page and, on
 * SwiftShader, returns zeros for larger buffers).
 */
import { REGIONS } from "./config";
import { lengthMask } from "./ops";
import type { ParamStore } from "./params";
import { EVAL, type CaptionSide, type ImageSide, encodeImage, encodeText, pairedSimilarity, similarity, textSA, visualSA } from "./sgraf";
import * as tf from "./tf";

/** Image-side work of a set of images, in evaluation mode. */
export interface EncodedImages {
  count: number;
  embed: number;
  /** Region embeddings [count, 36, E]. */
  emb: Float32Array;
  /** VisualSA global features [count, E]. */
  glo: Float32Array;
}

/** Caption-side work of a set of captions, variable length, packed. */
export interface EncodedCaptions {
  count: number;
  embed: number;
  lengths: Int32Array;
  /** Start of each caption's words in `emb`, in words. */
  offsets: Int32Array;
  /** Word embeddings, all captions' words one after another [Σ lengths, E]. */
  emb: Float32Array;
  /** TextSA global features [count, E]. */
  glo: Float32Array;
}

/**
 * A computation that reads tensors back: each `yield t` receives t's values. The generator owns
 * the tensors it yields and disposes them (in `finally`, so also when a read fails).
 */
export type Readback<R> = Generator<tf.Tensor, R, Float32Array>;

/** Runs a Readback with synchronous reads. */
export function readSync<R>(steps: Readback<R>): R {
  let done = false;
  try {
    let step = steps.next();
    while (!step.done) step = steps.next(step.value.dataSync() as Float32Array);
    done = true;
    return step.value;
  } finally {
    if (!done) steps.return(undefined as R);
  }
}

/**
 * Runs a Readback with asynchronous reads. `pause`, when given, is awaited after every read (an
 * encoded batch, a similarity shard): a caller that must answer signals yields to the event loop
 * there, and may throw to abandon the computation (the generator still disposes its tensors).
 */
export async function readAsync<R>(steps: Readback<R>, pause?: () => Promise<void>): Promise<R> {
  let done = false;
  try {
    let step = steps.next();
    while (!step.done) {
      const values = (await step.value.data()) as Float32Array;
      if (pause) await pause();
      step = steps.next(values);
    }
    done = true;
    return step.value;
  } finally {
    if (!done) steps.return(undefined as R);
  }
}

function* encodeImagesSteps(p: ParamStore, images: Float32Array, count: number): Readback<EncodedImages> {
  const [emb, glo] = tf.tidy(() => {
    const emb = encodeImage(p, tf.tensor3d(images, [count, REGIONS, p.config.img_dim]));
    return [emb, visualSA(p, emb, EVAL)];
  });
  try {
    const embValues = yield emb;
    const gloValues = yield glo;
    return { count, embed: p.config.embed_size, emb: embValues, glo: gloValues };
  } finally {
    tf.dispose([emb, glo]);
  }
}

/** Encodes images [n, 36, img_dim] (row-major). */
export function encodeImages(p: ParamStore, images: Float32Array, count: number): EncodedImages {
  return readSync(encodeImagesSteps(p, images, count));
}

export function encodeImagesAsync(p: ParamStore, images: Float32Array, count: number): Promise<EncodedImages> {
  return readAsync(encodeImagesSteps(p, images, count));
}

function* encodeCaptionsSteps(p: ParamStore, captions: Int32Array, lengths: Int32Array): Readback<EncodedCaptions> {
  const E = p.config.embed_size;
  const n = lengths.length;
  const T = captions.length / n;
  const [emb, glo] = tf.tidy(() => {
    const emb = encodeText(p, tf.tensor2d(captions, [n, T], "int32"), lengths, EVAL);
    const mask = lengthMask(lengths, T);
    return [emb, textSA(p, emb, mask, tf.tensor2d(Float32Array.from(lengths), [n, 1]), EVAL)];
  });
  try {
    const full = yield emb;
    const gloValues = yield glo;
    const offsets = new Int32Array(n);
    let total = 0;
    for (let i = 0; i < n; i++) {
      offsets[i] = total;
      total += lengths[i];
    }
    const packed = new Float32Array(total * E);
    for (let i = 0; i < n; i++) packed.set(full.subarray(i * T * E, (i * T + lengths[i]) * E), offsets[i] * E);
    return { count: n, embed: E, lengths: Int32Array.from(lengths), offsets, emb: packed, glo: gloValues };
  } finally {
    tf.dispose([emb, glo]);
  }
}

/** Encodes a batch of zero-padded captions [n, T] with their lengths. */
export function encodeCaptions(p: ParamStore, captions: Int32Array, lengths: Int32Array): EncodedCaptions {
  return readSync(encodeCaptionsSteps(p, captions, lengths));
}

export function encodeCaptionsAsync(p: ParamStore, captions: Int32Array, lengths: Int32Array): Promise<EncodedCaptions> {
  return readAsync(encodeCaptionsSteps(p, captions, lengths));
}

/** Concatenates encodings made batch by batch. */
export function concatImages(parts: EncodedImages[]): EncodedImages {
  const E = parts[0]?.embed ?? 0;
  return { count: parts.reduce((a, q) => a + q.count, 0), embed: E, emb: concatF32(parts.map((q) => q.emb)), glo: concatF32(parts.map((q) => q.glo)) };
}

/** Where each caption's words start when captions of these lengths are packed one after another, and the words in all. */
export function wordOffsets(lengths: ArrayLike<number>): { offsets: Int32Array; words: number } {
  const offsets = new Int32Array(lengths.length);
  let words = 0;
  for (let i = 0; i < lengths.length; i++) {
    offsets[i] = words;
    words += lengths[i];
  }
  return { offsets, words };
}

export function concatCaptions(parts: EncodedCaptions[]): EncodedCaptions {
  const E = parts[0]?.embed ?? 0;
  const lengths = Int32Array.from(parts.flatMap((q) => Array.from(q.lengths)));
  const { offsets } = wordOffsets(lengths);
  return { count: lengths.length, embed: E, lengths, offsets, emb: concatF32(parts.map((q) => q.emb)), glo: concatF32(parts.map((q) => q.glo)) };
}

function concatF32(arrays: Float32Array[]): Float32Array {
  const out = new Float32Array(arrays.reduce((a, x) => a + x.length, 0));
  let o = 0;
  for (const a of arrays) {
    out.set(a, o);
    o += a.length;
  }
  return out;
}

/** Selects images by index (e.g. one image per five captions). */
export function selectImages(enc: EncodedImages, indices: ArrayLike<number>): EncodedImages {
  const E = enc.embed;
  const n = indices.length;
  const emb = new Float32Array(n * REGIONS * E);
  const glo = new Float32Array(n * E);
  for (let i = 0; i < n; i++) {
    const j = indices[i];
    emb.set(enc.emb.subarray(j * REGIONS * E, (j + 1) * REGIONS * E), i * REGIONS * E);
    glo.set(enc.glo.subarray(j * E, (j + 1) * E), i * E);
  }
  return { count: n, embed: E, emb, glo };
}

/** Selects captions by index (a shortlist). */
export function selectCaptions(enc: EncodedCaptions, indices: ArrayLike<number>): EncodedCaptions {
  const E = enc.embed;
  const n = indices.length;
  const lengths = Int32Array.from({ length: n }, (_, i) => enc.lengths[indices[i]]);
  const { offsets, words } = wordOffsets(lengths);
  const emb = new Float32Array(words * E);
  const glo = new Float32Array(n * E);
  for (let i = 0; i < n; i++) {
    const j = indices[i];
    emb.set(enc.emb.subarray(enc.offsets[j] * E, (enc.offsets[j] + enc.lengths[j]) * E), offsets[i] * E);
    glo.set(enc.glo.subarray(j * E, (j + 1) * E), i * E);
  }
  return { count: n, embed: E, lengths, offsets, emb, glo };
}

/** Selects a contiguous range of captions. */
export function sliceCaptions(enc: EncodedCaptions, start: number, end: number): EncodedCaptions {
  const E = enc.embed;
  const lengths = enc.lengths.slice(start, end);
  const first = enc.offsets[start] ?? 0;
  const last = end < enc.count ? enc.offsets[end] : enc.emb.length / E;
  const offsets = Int32Array.from(enc.offsets.subarray(start, end), (o) => o - first);
  return { count: end - start, embed: E, lengths, offsets, emb: enc.emb.slice(first * E, last * E), glo: enc.glo.slice(start * E, end * E) };
}

export interface ShardOptions {
  /** Upper bound on the bytes of the largest intermediates of one shard (default 256 MiB). */
  budgetBytes: number;
  /** Called after each shard is read back (the retrieval engine's garbage collection hook). */
  betweenShards?: () => void;
}

export const SHARD_DEFAULTS: ShardOptions = { budgetBytes: 256 * 2 ** 20 };

/**
 * The shard budget of a Workers isolate (128 MB for everything): the wasm heap grows to about the
 * weights plus this and never shrinks. A paper-size k′ = 128 re-ranking takes as long under it.
 */
export const WORKER_SHARD_BYTES = 16 * 2 ** 20;

/**
 * Bytes of tensors alive at once per (image, caption) pair and caption word while a shard is scored:
 * a bound fitted to the peak that `tf.profile` measures (test/shared/model/inference.test.ts checks
 * it at several sizes). SGR's graph reasoning keeps about 64 sim_dim-vectors per node; SAF a few.
 */
function floatsPerPairWord(module: "SGR" | "SAF", E: number, S: number, L: number): number {
  return module === "SGR" ? 200 + 5 * E + 64 * S + 7 * (L + 1) : 250 + 9 * E + 4 * S + (L + 1);
}

/** How many images and captions one shard holds so that its tensors stay under the budget. */
export function shardShape(nImages: number, nCaptions: number, module: "SGR" | "SAF", E: number, S: number, L: number, budgetBytes: number): { images: number; captions: number } {
  const perPair = floatsPerPairWord(module, E, S, L) * (L + 1) * 4;
  const pairs = Math.max(1, Math.floor(budgetBytes / perPair));
  // Square-ish shards: each side at most what the budget allows.
  let images = Math.max(1, Math.min(nImages, Math.floor(Math.sqrt(pairs))));
  const captions = Math.max(1, Math.min(nCaptions, Math.floor(pairs / images)));
  images = Math.max(1, Math.min(nImages, Math.floor(pairs / captions)));
  return { images, captions };
}

/** Image tensors of images [i0, i1) (the caller disposes them). */
function imageTensors(imgs: EncodedImages, i0: number, i1: number): ImageSide {
  const E = imgs.embed;
  return {
    emb: tf.tensor3d(imgs.emb.subarray(i0 * REGIONS * E, i1 * REGIONS * E), [i1 - i0, REGIONS, E]),
    glo: tf.tensor2d(imgs.glo.subarray(i0 * E, i1 * E), [i1 - i0, E]),
  };
}

function* similaritySteps(p: ParamStore, imgs: EncodedImages, caps: EncodedCaptions, options: Partial<ShardOptions>): Readback<Float32Array> {
  const { budgetBytes } = { ...SHARD_DEFAULTS, ...options };
  const E = imgs.embed;
  const out = new Float32Array(imgs.count * caps.count);
  const maxLen = caps.lengths.reduce((a, b) => Math.max(a, b), 1);
  const shard = shardShape(imgs.count, caps.count, p.config.module_name, E, p.config.sim_dim, maxLen, budgetBytes);
  for (let c0 = 0; c0 < caps.count; c0 += shard.captions) {
    const c1 = Math.min(caps.count, c0 + shard.captions);
    const capSide = captionTensors(caps, c0, c1);
    try {
      for (let i0 = 0; i0 < imgs.count; i0 += shard.images) {
        const i1 = Math.min(imgs.count, i0 + shard.images);
        const sims = tf.tidy(() => similarity(p, imageTensors(imgs, i0, i1), capSide, EVAL));
        let block: Float32Array;
        try {
          block = yield sims;
        } finally {
          sims.dispose();
        }
        for (let i = i0; i < i1; i++) out.set(block.subarray((i - i0) * (c1 - c0), (i - i0 + 1) * (c1 - c0)), i * caps.count + c0);
        options.betweenShards?.();
      }
    } finally {
      tf.dispose([capSide.emb, capSide.glo, capSide.mask]);
    }
  }
  return out;
}

/**
 * Similarity of every image with every caption, [nImages, nCaptions] row-major (rows images,
 * columns captions, as the official sims matrix).
 */
export function similarityMatrix(p: ParamStore, imgs: EncodedImages, caps: EncodedCaptions, options: Partial<ShardOptions> = {}): Float32Array {
  return readSync(similaritySteps(p, imgs, caps, options));
}

/**
 * Similarity of image i with caption i only, [n] (`imgs` and `caps` hold n items each): for a
 * list of pairs, where the matrix of `similaritySteps` would score n² of them. Shards of pairs
 * under the same memory budget.
 */
function* pairedSteps(p: ParamStore, imgs: EncodedImages, caps: EncodedCaptions, options: Partial<ShardOptions>): Readback<Float32Array> {
  if (imgs.count !== caps.count) throw new RangeError(`pairedSimilarity: ${imgs.count} images but ${caps.count} captions`);
  const { budgetBytes } = { ...SHARD_DEFAULTS, ...options };
  const out = new Float32Array(caps.count);
  const maxLen = caps.lengths.reduce((a, b) => Math.max(a, b), 1);
  const perPair = floatsPerPairWord(p.config.module_name, imgs.embed, p.config.sim_dim, maxLen) * (maxLen + 1) * 4;
  const shard = Math.max(1, Math.floor(budgetBytes / perPair));
  for (let i0 = 0; i0 < caps.count; i0 += shard) {
    const i1 = Math.min(caps.count, i0 + shard);
    const sims = tf.tidy(() => pairedSimilarity(p, imageTensors(imgs, i0, i1), captionTensors(caps, i0, i1)));
    try {
      out.set(yield sims, i0);
    } finally {
      sims.dispose();
    }
    options.betweenShards?.();
  }
  return out;
}

export type EnsembleOptions = Partial<ShardOptions> & {
  onNet?: (k: number, sims: Float32Array) => void;
  /** Awaited after every shard by the async variant (see readAsync). */
  pause?: () => Promise<void>;
};

type SimilaritySteps = typeof similaritySteps;

function* ensembleSteps(nets: readonly ParamStore[], images: (k: number) => EncodedImages, captions: (k: number) => EncodedCaptions, options: EnsembleOptions, steps: SimilaritySteps = similaritySteps): Readback<Float32Array> {
  if (nets.length === 0) throw new RangeError("ensembleSimilarity: no nets");
  const out = yield* steps(nets[0], images(0), captions(0), options);
  options.onNet?.(0, out);
  for (let k = 1; k < nets.length; k++) {
    const s = yield* steps(nets[k], images(k), captions(k), options);
    options.onNet?.(k, s); // each net's own matrix, before it joins the average
    for (let i = 0; i < s.length; i++) out[i] += s[i];
  }
  if (nets.length > 1) for (let i = 0; i < out.length; i++) out[i] /= nets.length;
  return out;
}

/**
 * Similarities averaged over the nets (the official `(sims_A + sims_B) / 2`): net k scores
 * `images(k)` against `captions(k)`, its own encodings of the same items. `onNet` sees each
 * net's matrix before it joins the average (the diagnostics measure each net's spread).
 */
export function ensembleSimilarity(nets: readonly ParamStore[], images: (k: number) => EncodedImages, captions: (k: number) => EncodedCaptions, options: EnsembleOptions = {}): Float32Array {
  return readSync(ensembleSteps(nets, images, captions, options));
}

export function ensembleSimilarityAsync(nets: readonly ParamStore[], images: (k: number) => EncodedImages, captions: (k: number) => EncodedCaptions, options: EnsembleOptions = {}): Promise<Float32Array> {
  return readAsync(ensembleSteps(nets, images, captions, options), options.pause);
}

/**
 * Pair similarities averaged over the nets, [n]: net k scores image i of `images(k)` with caption
 * i of `captions(k)` (the edge's /v1/score).
 */
export function ensemblePairedSimilarityAsync(nets: readonly ParamStore[], images: (k: number) => EncodedImages, captions: (k: number) => EncodedCaptions, options: EnsembleOptions = {}): Promise<Float32Array> {
  return readAsync(ensembleSteps(nets, images, captions, options, pairedSteps), options.pause);
}

/** Zero-padded tensors of captions [c0, c1) (the caller disposes them). */
function captionTensors(caps: EncodedCaptions, c0: number, c1: number): CaptionSide {
  const E = caps.embed;
  const n = c1 - c0;
  const lengths = caps.lengths.slice(c0, c1);
  const L = lengths.reduce((a, b) => Math.max(a, b), 1);
  const emb = new Float32Array(n * L * E);
  for (let i = 0; i < n; i++) {
    const o = caps.offsets[c0 + i];
    emb.set(caps.emb.subarray(o * E, (o + lengths[i]) * E), i * L * E);
  }
  return {
    emb: tf.tensor3d(emb, [n, L, E]),
    glo: tf.tensor2d(caps.glo.subarray(c0 * E, c1 * E), [n, E]),
    mask: lengthMask(lengths, L),
    lengths,
  };
}
