import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { type TrainBatch, batchCount, type PairSource, sequentialBatches, shuffledBatches } from "../../../trainer/data/batches";
import { memoryFeatures, openFeatures } from "../../../trainer/data/features";
import { Random } from "../../../shared/random";
import { featureValue, tempDir, writeFeatures } from "./fixtures";

const tmp = tempDir("pc2-batches-");
afterAll(tmp.cleanup);

const R = 36;
const D = 3;

/** 23 captions of lengths 3..7 over 5 images (the last image has three captions); t2i scrambled. */
function source(): PairSource {
  const file = join(tmp.dir, "ims.npy");
  writeFeatures(file, 5, R, D);
  const captions = Array.from({ length: 23 }, (_, i) => Int32Array.from({ length: 3 + (i % 5) }, (_, k) => 100 * i + k + 1));
  const t2i = Int32Array.from({ length: 23 }, (_, i) => (i * 3) % 5);
  return { captions, images: openFeatures(file), t2i };
}

function checkBatch(src: PairSource, b: TrainBatch): void {
  expect(b.size).toBe(b.ids.length);
  expect(b.maxLen).toBe(Math.max(...Array.from(b.ids, (id) => src.captions[id].length)));
  expect(b.captions.length).toBe(b.size * b.maxLen);
  expect(b.images.length).toBe(b.size * R * D);
  for (let k = 0; k < b.size; k++) {
    const cap = src.captions[b.ids[k]];
    expect(b.lengths[k]).toBe(cap.length);
    expect(Array.from(b.captions.subarray(k * b.maxLen, k * b.maxLen + cap.length))).toEqual(Array.from(cap));
    expect(b.captions.subarray(k * b.maxLen + cap.length, (k + 1) * b.maxLen).every((x) => x === 0)).toBe(true);
    expect(b.imageIds[k]).toBe(src.t2i[b.ids[k]]);
    // Spot values of the gathered image of this caption.
    expect(b.images[k * R * D]).toBe(featureValue(b.imageIds[k], 0, 0));
    expect(b.images[(k + 1) * R * D - 1]).toBe(Math.fround(featureValue(b.imageIds[k], R - 1, D - 1)));
  }
}

describe("shuffledBatches", () => {
  test("every id once per epoch, batches of batchSize and a smaller last one, collated as collate_fn", () => {
    const src = source();
    const rng = new Random(11);
    const epochs: number[][] = [];
    for (let e = 0; e < 3; e++) {
      const batches = [...shuffledBatches(src, rng, { batchSize: 5 })];
      expect(batches.map((b) => b.size)).toEqual([5, 5, 5, 5, 3]);
      expect(batches.length).toBe(batchCount(23, 5));
      const seen = batches.flatMap((b) => Array.from(b.ids));
      expect([...seen].sort((a, b) => a - b)).toEqual(Array.from({ length: 23 }, (_, i) => i));
      for (const b of batches) checkBatch(src, b);
      epochs.push(seen);
    }
    // A new order each epoch, and not the identity.
    expect(epochs[0]).not.toEqual(epochs[1]);
    expect(epochs[0]).not.toEqual(Array.from({ length: 23 }, (_, i) => i));
    src.images.close();
  });

  test("deterministic in the seed, and a saved RNG state replays the same epoch", () => {
    const src = source();
    const order = (rng: Random) => [...shuffledBatches(src, rng, { batchSize: 4 })].flatMap((b) => Array.from(b.ids));
    expect(order(new Random(5))).toEqual(order(new Random(5)));
    expect(order(new Random(5))).not.toEqual(order(new Random(6)));
    const rng = new Random(5);
    order(rng);
    const saved = rng.state();
    const second = order(rng);
    expect(order(Random.fromState(saved))).toEqual(second);
    // Resuming inside the epoch: skip the batches already done.
    const tail = [...shuffledBatches(src, Random.fromState(saved), { batchSize: 4, startBatch: 2 })].flatMap((b) => Array.from(b.ids));
    expect(tail).toEqual(second.slice(8));
    src.images.close();
  });

  test("a subset of ids: positions index the subset, ids the captions", () => {
    const src = source();
    const subset = [20, 3, 7, 12];
    const batches = [...shuffledBatches(src, new Random(0), { batchSize: 3, ids: subset })];
    const pairs = batches.flatMap((b) => Array.from(b.ids, (id, k) => [id, b.positions[k]]));
    expect(pairs.map(([id]) => id).sort((a, b) => a - b)).toEqual([3, 7, 12, 20]);
    for (const [id, pos] of pairs) expect(subset[pos]).toBe(id);
    expect(() => [...shuffledBatches(src, new Random(0), { batchSize: 3, ids: [23] })]).toThrow(/caption id 23 out of range \[0, 23\)/);
    src.images.close();
  });
});

describe("sequentialBatches", () => {
  test("captions in order (evaluation), the same every time", () => {
    const src = source();
    const batches = [...sequentialBatches(src, { batchSize: 10 })];
    expect(batches.map((b) => b.size)).toEqual([10, 10, 3]);
    expect(batches.flatMap((b) => Array.from(b.ids))).toEqual(Array.from({ length: 23 }, (_, i) => i));
    for (const b of batches) checkBatch(src, b);
    expect(() => [...sequentialBatches(src, { batchSize: 0 })]).toThrow(/batch size must be a positive integer/);
    src.images.close();
  });

  test("works over in-memory features and checks the pairing length", () => {
    const images = memoryFeatures(new Float32Array(2 * R * D).fill(1), 2, R, D);
    const captions = [Int32Array.of(1, 5, 2), Int32Array.of(1, 2)];
    const [b] = [...sequentialBatches({ captions, images, t2i: [1, 0] }, { batchSize: 8 })];
    expect(Array.from(b.captions)).toEqual([1, 5, 2, 1, 2, 0]);
    expect(Array.from(b.lengths)).toEqual([3, 2]);
    expect(() => [...sequentialBatches({ captions, images, t2i: [0] }, { batchSize: 8 })]).toThrow(/pairing has 1 image indices for 2 captions/);
  });
});
