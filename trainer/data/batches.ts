/**
 * Mini-batches of (image, caption) pairs: `DataLoader(PrecompDataset, shuffle=…)` with
 * `data.py`'s collate_fn. Training draws a fresh permutation per epoch from a seeded Random;
 * evaluation walks the captions in order.
 */
import type { FeatureStore } from "./features";
import type { ModelBatch } from "../../shared/model/steps";
import type { Random } from "../../shared/random";

/** What a batch is drawn from: a split's captions and features, and the pairing in use. */
export interface PairSource {
  captions: readonly Int32Array[];
  images: FeatureStore;
  /** Image index of each caption (the noisy index for training, floor(i / imDiv) otherwise). */
  t2i: ArrayLike<number>;
}

/** A model batch (images, padded captions, lengths) and where its captions came from. */
export interface TrainBatch extends ModelBatch {
  /** Caption ids (indices into `captions`). */
  ids: Int32Array;
  /**
   * Position of each caption in the id list the iterator walks: the `index` that the official
   * labeled/unlabeled subsets return (it indexes their per-sample labels and probabilities).
   */
  positions: Int32Array;
  /** `t2i[id]` of each caption. */
  imageIds: Int32Array;
  /** Width of `captions` (collate_fn pads with 0, `<pad>`, to the longest caption). */
  maxLen: number;
  size: number;
}

export interface BatchOptions {
  batchSize: number;
  /** The caption ids to walk (default: all of them). A labeled or unlabeled subset passes its ids. */
  ids?: ArrayLike<number>;
  /** Skip this many batches of the epoch (resuming inside an epoch). */
  startBatch?: number;
}

/** The order of one epoch: a permutation of the positions 0..n-1 drawn from `rng`. */
export function shuffledOrder(n: number, rng: Random): Int32Array {
  return rng.permutation(n);
}

/**
 * One epoch of shuffled batches (DataLoader shuffle=True, drop_last=False). The permutation is drawn
 * when the generator is created, so `rng`'s state after the call is the state to checkpoint.
 */
export function shuffledBatches(source: PairSource, rng: Random, options: BatchOptions): Generator<TrainBatch> {
  const ids = idList(source, options.ids);
  return batchesInOrder(source, ids, shuffledOrder(ids.length, rng), options);
}

/** Batches in caption order (DataLoader shuffle=False), for validation and testing. */
export function sequentialBatches(source: PairSource, options: BatchOptions): Generator<TrainBatch> {
  const ids = idList(source, options.ids);
  const order = new Int32Array(ids.length);
  for (let i = 0; i < order.length; i++) order[i] = i;
  return batchesInOrder(source, ids, order, options);
}

/** Batches over `order` (positions into `ids`). */
export function* batchesInOrder(source: PairSource, ids: Int32Array, order: Int32Array, options: BatchOptions): Generator<TrainBatch> {
  const B = options.batchSize;
  if (!Number.isInteger(B) || B <= 0) throw new Error(`batch size must be a positive integer, got ${B}`);
  const rowLen = source.images.regions * source.images.dim;
  for (let start = (options.startBatch ?? 0) * B; start < order.length; start += B) {
    const positions = order.slice(start, Math.min(order.length, start + B));
    yield collate(source, ids, positions, rowLen);
  }
}

/** Number of batches an epoch over `n` captions has. */
export function batchCount(n: number, batchSize: number): number {
  return Math.ceil(n / batchSize);
}

function collate(source: PairSource, ids: Int32Array, positions: Int32Array, rowLen: number): TrainBatch {
  const size = positions.length;
  const batchIds = new Int32Array(size);
  const imageIds = new Int32Array(size);
  const lengths = new Int32Array(size);
  let maxLen = 0;
  for (let k = 0; k < size; k++) {
    const id = ids[positions[k]];
    batchIds[k] = id;
    imageIds[k] = source.t2i[id];
    lengths[k] = source.captions[id].length;
    if (lengths[k] > maxLen) maxLen = lengths[k];
  }
  const captions = new Int32Array(size * maxLen);
  for (let k = 0; k < size; k++) captions.set(source.captions[batchIds[k]], k * maxLen);
  const images = source.images.gather(imageIds, new Float32Array(size * rowLen));
  return { ids: batchIds, positions, imageIds, images, captions, lengths, maxLen, size };
}

function idList(source: PairSource, ids: ArrayLike<number> | undefined): Int32Array {
  if (source.t2i.length !== source.captions.length) {
    throw new Error(`pairing has ${source.t2i.length} image indices for ${source.captions.length} captions`);
  }
  if (!ids) {
    const all = new Int32Array(source.captions.length);
    for (let i = 0; i < all.length; i++) all[i] = i;
    return all;
  }
  const list = Int32Array.from(ids);
  for (const id of list) {
    if (id < 0 || id >= source.captions.length) throw new RangeError(`caption id ${id} out of range [0, ${source.captions.length})`);
  }
  return list;
}
