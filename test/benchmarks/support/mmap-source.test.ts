import { afterAll, describe, expect, test } from "bun:test";
import { join } from "node:path";
import { encodeNpyHeader } from "../../../shared/formats/npy";
import { MMAP_WINDOW_BYTES, mmapSource } from "../../../benchmarks/support/mmap-source";
import { featuresFromSource, openFeatures } from "../../../trainer/data/features";
import { tempDir, writeFeatures, writeSparseFeatures } from "../../trainer/data/fixtures";

const tmp = tempDir("pc2-mmap-");
afterAll(tmp.cleanup);

describe("mmapSource", () => {
  for (const dtype of ["float32", "float16", "float64"] as const) {
    test(`gathered ${dtype} rows equal those of the trainer's positioned reads`, () => {
      const file = join(tmp.dir, `${dtype}_ims.npy`);
      writeFeatures(file, 9, 36, 5, dtype);
      const mapped = featuresFromSource(mmapSource(file), file, { regions: 36, imgDim: 5 });
      const read = openFeatures(file);
      expect([mapped.count, mapped.regions, mapped.dim, mapped.dtype]).toEqual([9, 36, 5, dtype]);
      const rows = [7, 0, 3, 3, 4, 5, 8];
      expect(Array.from(mapped.gather(rows))).toEqual(Array.from(read.gather(rows)));
      mapped.close();
      read.close();
      expect(() => mapped.gather([0])).toThrow(/closed/);
    });
  }

  test("a sparse 1.6 GB file: a row across the 1 GiB window boundary, and the last row", () => {
    // Declared size only: the test never holds more than a few rows.
    const [R, D, rows] = [36, 2048, 5500];
    const file = join(tmp.dir, "sparse_ims.npy");
    const row = Float32Array.from({ length: R * D }, (_, i) => i + 0.5);
    const rowBytes = R * D * 4;
    const dataOffset = encodeNpyHeader("float32", [rows, R, D]).length;
    const straddling = Math.floor((MMAP_WINDOW_BYTES - dataOffset) / rowBytes);
    expect(dataOffset + straddling * rowBytes < MMAP_WINDOW_BYTES && dataOffset + (straddling + 1) * rowBytes > MMAP_WINDOW_BYTES).toBe(true);
    writeSparseFeatures(file, rows, R, D, row, [straddling, rows - 1]);
    const source = mmapSource(file);
    // The mapping's own check, not the positioned reads it falls back to when it cannot map.
    expect(() => source.readAt(new Uint8Array(8), source.size - 4)).toThrow(/passes the end of the file/);
    const store = featuresFromSource(source, file, { regions: R, imgDim: D });
    expect(store.count).toBe(rows);
    const got = store.gather([straddling, 0, rows - 1]);
    expect(got.subarray(0, R * D)).toEqual(row);
    expect(got.subarray(R * D, 2 * R * D).every((x) => x === 0)).toBe(true);
    expect(got.subarray(2 * R * D)).toEqual(row);
    store.close();
  });

  test("a missing file: the trainer's error", () => {
    const missing = join(tmp.dir, "nope_ims.npy");
    expect(() => mmapSource(missing)).toThrow(`${missing}: file not found`);
  });
});
