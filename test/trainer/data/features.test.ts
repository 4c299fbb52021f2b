import { afterAll, describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { join } from "node:path";
import { readNpy, writeNpy } from "../../../shared/formats/npy";
import { type ByteSource, featuresFromSource, fileSource, memoryFeatures, openFeatures } from "../../../trainer/data/features";
import { featureValue, tempDir, write, writeFeatures, writeSparseFeatures } from "./fixtures";

const tmp = tempDir("pc2-features-");
afterAll(tmp.cleanup);

function expected(file: string, rows: number[]): Float32Array {
  const arr = readNpy(new Uint8Array(readFileSync(file)), file);
  const [, R, D] = arr.shape;
  const data = arr.data as Float32Array | Float64Array;
  const out = new Float32Array(rows.length * R * D);
  rows.forEach((row, k) => {
    for (let i = 0; i < R * D; i++) out[k * R * D + i] = data[row * R * D + i];
  });
  return out;
}

describe("openFeatures", () => {
  for (const dtype of ["float32", "float16", "float64"] as const) {
    test(`gathered ${dtype} rows equal readNpy of the same file`, () => {
      const file = join(tmp.dir, `${dtype}_ims.npy`);
      writeFeatures(file, 9, 36, 5, dtype);
      const store = openFeatures(file, { regions: 36, imgDim: 5 });
      expect([store.count, store.regions, store.dim, store.dtype]).toEqual([9, 36, 5, dtype]);
      const rows = [7, 0, 3, 3, 4, 5, 8];
      const got = store.gather(rows);
      expect(got.length).toBe(rows.length * 36 * 5);
      expect(Array.from(got)).toEqual(Array.from(expected(file, rows)));
      // And the values are the ones written (float16 rounds to 2^-7 at these magnitudes).
      const tol = dtype === "float16" ? 2 ** -7 : 0;
      for (let k = 0; k < rows.length; k++) {
        for (const [r, j] of [[0, 0], [35, 4], [17, 2]]) {
          expect(Math.abs(got[(k * 36 + r) * 5 + j] - featureValue(rows[k], r, j))).toBeLessThanOrEqual(tol);
        }
      }
      store.close();
      expect(() => store.gather([0])).toThrow(/closed/);
    });
  }

  test("gather writes into a given output and leaves the rest of it alone", () => {
    const file = join(tmp.dir, "out_ims.npy");
    writeFeatures(file, 4, 36, 2);
    const store = openFeatures(file);
    const out = new Float32Array(3 * 72).fill(-1);
    const got = store.gather([2], out);
    expect(got).toBe(out);
    expect(Array.from(out.subarray(0, 72))).toEqual(Array.from(expected(file, [2])));
    expect(out[72]).toBe(-1);
    expect(() => store.gather([0, 1, 2, 3], out)).toThrow(/output holds 216 values, 4 rows need 288/);
    expect(() => store.gather([4])).toThrow(/image index 4 out of range \[0, 4\)/);
    expect(() => store.gather([1.5])).toThrow(/out of range/);
    store.close();
  });

  test("reads only the header and the requested rows (consecutive rows in one read)", () => {
    const file = join(tmp.dir, "count_ims.npy");
    writeFeatures(file, 50, 36, 3);
    const inner = fileSource(file);
    const reads: [number, number][] = [];
    const counting: ByteSource = {
      size: inner.size,
      readAt(dst, position) {
        reads.push([position, dst.length]);
        inner.readAt(dst, position);
      },
      close: () => inner.close(),
    };
    const store = featuresFromSource(counting, file);
    const headerReads = reads.length;
    const dataOffset = inner.size - 50 * 36 * 3 * 4;
    expect(reads.every(([p, n]) => p + n <= dataOffset)).toBe(true);
    reads.length = 0;
    const got = store.gather([10, 11, 12, 40]);
    const rowBytes = 36 * 3 * 4;
    expect(reads).toEqual([
      [dataOffset + 10 * rowBytes, 3 * rowBytes],
      [dataOffset + 40 * rowBytes, rowBytes],
    ]);
    expect(Array.from(got)).toEqual(Array.from(expected(file, [10, 11, 12, 40])));
    expect(headerReads).toBeLessThanOrEqual(2);
    store.close();
  });

  test("a sparse 1.6 GB file: rows far apart", () => {
    // Declared size only: the test never holds more than a few rows.
    const [R, D, rows] = [36, 2048, 5500];
    const file = join(tmp.dir, "sparse_ims.npy");
    const row = Float32Array.from({ length: R * D }, (_, i) => i + 0.5);
    writeSparseFeatures(file, rows, R, D, row, [rows - 1]);
    const store = openFeatures(file, { regions: R, imgDim: D });
    expect(store.count).toBe(rows);
    const got = store.gather([rows - 1, 0]);
    expect(got.subarray(0, R * D)).toEqual(row);
    expect(got.subarray(R * D).every((x) => x === 0)).toBe(true);
    store.close();
  });

  test("errors name the file, the shape found and the flag", () => {
    const rank2 = join(tmp.dir, "rank2_ims.npy");
    write(rank2, writeNpy({ dtype: "float32", shape: [4, 6], data: new Float32Array(24) }));
    expect(() => openFeatures(rank2)).toThrow(`${rank2}: image features must have rank 3 (images, regions, img_dim), found shape (4, 6)`);

    const regions = join(tmp.dir, "regions_ims.npy");
    writeFeatures(regions, 2, 10, 4);
    expect(() => openFeatures(regions, { regions: 36 })).toThrow(`${regions}: image features have 10 regions per image (shape (2, 10, 4)), expected 36`);

    const dim = join(tmp.dir, "dim_ims.npy");
    writeFeatures(dim, 2, 36, 48);
    expect(() => openFeatures(dim, { imgDim: 2048 })).toThrow(`${dim}: image features have shape (2, 36, 48) (img_dim 48) but --img_dim is 2048; pass --img_dim 48`);

    const ints = join(tmp.dir, "int_ims.npy");
    write(ints, writeNpy({ dtype: "int32", shape: [1, 36, 1], data: new Int32Array(36) }));
    expect(() => openFeatures(ints)).toThrow(`${ints}: features must be float16, float32 or float64, found int32`);

    const missing = join(tmp.dir, "nope_ims.npy");
    expect(() => openFeatures(missing)).toThrow(`${missing}: file not found`);

    const truncated = join(tmp.dir, "trunc_ims.npy");
    write(truncated, writeNpy({ dtype: "float32", shape: [3, 36, 2], data: new Float32Array(216) }).subarray(0, 400));
    expect(() => openFeatures(truncated)).toThrow(/trunc_ims\.npy: truncated data/);
  });
});

describe("memoryFeatures", () => {
  test("gathers rows of an in-memory array and checks its length", () => {
    const data = Float32Array.from({ length: 3 * 2 * 2 }, (_, i) => i);
    const store = memoryFeatures(data, 3, 2, 2);
    expect(Array.from(store.gather([2, 0]))).toEqual([8, 9, 10, 11, 0, 1, 2, 3]);
    expect(() => store.gather([3])).toThrow(/out of range/);
    expect(() => memoryFeatures(data, 4, 2, 2, "synthetic")).toThrow("synthetic: features hold 12 values, shape (4, 2, 2) needs 16");
  });
});
