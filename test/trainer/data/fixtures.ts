/** Small dataset fixtures written to temporary folders by the data tests. */
import { closeSync, ftruncateSync, mkdirSync, mkdtempSync, openSync, rmSync, writeFileSync, writeSync } from "node:fs";
import { tmpdir } from "node:os";
import { dirname, join } from "node:path";
import type { DType } from "../../../shared/formats/ndarray";
import { encodeNpyHeader, writeNpy } from "../../../shared/formats/npy";
import { Vocabulary } from "../../../shared/formats/vocab";

export function tempDir(prefix = "pc2-data-"): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

/** Value of element (image i, region r, feature j) in fixture features: exact in float16 too. */
export function featureValue(i: number, r: number, j: number): number {
  return i + r / 64 + j / 1024;
}

export function featureArray(count: number, regions: number, dim: number): Float32Array {
  const data = new Float32Array(count * regions * dim);
  for (let i = 0; i < count; i++) for (let r = 0; r < regions; r++) for (let j = 0; j < dim; j++) data[(i * regions + r) * dim + j] = featureValue(i, r, j);
  return data;
}

export function writeFeatures(path: string, count: number, regions = 36, dim = 4, dtype: DType = "float32"): Float32Array {
  const data = featureArray(count, regions, dim);
  write(path, writeNpy({ dtype, shape: [count, regions, dim], data }));
  return data;
}

/**
 * A float32 (rows, regions, dim) feature file of declared size only (ftruncate: sparse, zeros) with
 * `row` written at the rows `at`, so that a test reaches gigabytes of file holding only a few rows.
 */
export function writeSparseFeatures(path: string, rows: number, regions: number, dim: number, row: Float32Array, at: number[]): void {
  const head = encodeNpyHeader("float32", [rows, regions, dim]);
  const rowBytes = regions * dim * 4;
  const fd = openSync(path, "w");
  try {
    writeSync(fd, head, 0, head.length, 0);
    ftruncateSync(fd, head.length + rows * rowBytes);
    for (const r of at) writeSync(fd, new Uint8Array(row.buffer, row.byteOffset, rowBytes), 0, rowBytes, head.length + r * rowBytes);
  } finally {
    closeSync(fd);
  }
}

export function write(path: string, content: string | Uint8Array): void {
  mkdirSync(dirname(path), { recursive: true });
  writeFileSync(path, content);
}

export const FIXTURE_WORDS = ["a", "dog", "cat", "runs", "on", "the", "grass", "."];

export function writeVocab(path: string, words = FIXTURE_WORDS): Vocabulary {
  const v = Vocabulary.fromWords(words);
  write(path, JSON.stringify(v.toJSON()));
  return v;
}
