import { describe, expect, test } from "bun:test";
import { readFileSync } from "node:fs";
import { resolve } from "node:path";
import { type DType, type TypedArray, halfToFloat, floatToHalf, toIndexArray } from "../../../shared/formats/ndarray";
import { type RandomAccessBytes, encodeNpyHeader, parseNpyHeader, readNpy, readNpyHeader, writeNpy } from "../../../shared/formats/npy";
import { expectClose, expectFormatError } from "./expect";
import { REFERENCE_DIR, SHARED_DIR } from "../../support";

const FILE = "test.npy";

/** A .npy file built by hand: magic, version, little-endian header length, the header text, data. */
function npyBytes(major: number, headerText: string, data: Uint8Array = new Uint8Array(0), minor = 0): Uint8Array {
  const header = major === 3 ? new TextEncoder().encode(headerText) : Uint8Array.from(headerText, (c) => c.charCodeAt(0));
  const pre = major === 1 ? 10 : 12;
  const out = new Uint8Array(pre + header.length + data.length);
  out.set([0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59, major, minor]);
  const dv = new DataView(out.buffer);
  if (major === 1) dv.setUint16(8, header.length, true);
  else dv.setUint32(8, header.length, true);
  out.set(header, pre);
  out.set(data, pre + header.length);
  return out;
}

function dict(descr: string, shape: string, fortran = "False"): string {
  return `{'descr': '${descr}', 'fortran_order': ${fortran}, 'shape': ${shape}, }\n`;
}

const headerText = (bytes: Uint8Array): string => {
  const len = bytes[8] | (bytes[9] << 8);
  return String.fromCharCode(...bytes.subarray(10, 10 + len));
};

const ROUND_TRIPS: Array<{ dtype: DType; descr: string; data: TypedArray | number[]; tol: number }> = [
  { dtype: "float32", descr: "<f4", data: Float32Array.from([0, -1.5, 3.1415927, 1e-38, 3.4e38, NaN, Infinity, -Infinity]), tol: 0 },
  { dtype: "float64", descr: "<f8", data: Float64Array.from([0, -1.5, Math.PI, 1e-308, 1.7e308, Number.MIN_VALUE, NaN, -Infinity]), tol: 0 },
  // Values exactly representable in float16, so the round trip is exact.
  { dtype: "float16", descr: "<f2", data: Float32Array.from([0, -1.5, 65504, 2 ** -24, 2 ** -14, 0.333251953125, NaN, Infinity]), tol: 0 },
  { dtype: "int64", descr: "<i8", data: BigInt64Array.from([0n, -1n, 9007199254740993n, -(2n ** 63n), 2n ** 63n - 1n, 28999n]), tol: 0 },
  { dtype: "int32", descr: "<i4", data: Int32Array.from([0, -1, 2147483647, -2147483648, 12345]), tol: 0 },
  { dtype: "int16", descr: "<i2", data: Int16Array.from([0, -1, 32767, -32768, 300]), tol: 0 },
  { dtype: "int8", descr: "|i1", data: Int8Array.from([0, -1, 127, -128, 5]), tol: 0 },
  { dtype: "uint8", descr: "|u1", data: Uint8Array.from([0, 1, 128, 255, 7]), tol: 0 },
  { dtype: "bool", descr: "|b1", data: Uint8Array.from([1, 0, 0, 1, 1]), tol: 0 },
];

describe("npy round trips", () => {
  for (const { dtype, descr, data, tol } of ROUND_TRIPS) {
    test(`${dtype} as '${descr}'`, () => {
      const bytes = writeNpy({ dtype, shape: [data.length], data });
      expect(headerText(bytes)).toContain(`'descr': '${descr}'`);
      const back = readNpy(bytes, FILE);
      expect(back.dtype).toBe(dtype);
      expect(back.shape).toEqual([data.length]);
      expectClose(back.data, data, tol);
    });
  }

  test("int64 keeps values beyond 2^53 exactly", () => {
    const data = BigInt64Array.from([2n ** 62n + 1n, -(2n ** 62n) - 3n]);
    const back = readNpy(writeNpy({ dtype: "int64", shape: [2], data }), FILE);
    expect(back.data).toBeInstanceOf(BigInt64Array);
    expect(Array.from(back.data as BigInt64Array)).toEqual(Array.from(data));
  });

  test("0-d, 1-d and 3-d shapes, with numpy's shape tuples", () => {
    const scalar = writeNpy({ dtype: "float64", shape: [], data: [2.5] });
    expect(headerText(scalar)).toContain("'shape': ()");
    const s = readNpy(scalar, FILE);
    expect(s.shape).toEqual([]);
    expectClose(s.data, [2.5], 0);

    const vec = writeNpy({ dtype: "int32", shape: [3], data: [1, 2, 3] });
    expect(headerText(vec)).toContain("'shape': (3,)");

    const cube = Float32Array.from({ length: 24 }, (_, i) => i * 0.25 - 3);
    const c = writeNpy({ dtype: "float32", shape: [2, 3, 4], data: cube });
    expect(headerText(c)).toContain("'shape': (2, 3, 4)");
    const back = readNpy(c, FILE);
    expect(back.shape).toEqual([2, 3, 4]);
    expectClose(back.data, cube, 0);

    const empty = readNpy(writeNpy({ dtype: "float32", shape: [0, 5], data: [] }), FILE);
    expect(empty.shape).toEqual([0, 5]);
    expect(empty.data.length).toBe(0);
  });

  test("the header pads the data to a 64-byte boundary and ends with a newline", () => {
    for (const shape of [[], [7], [2, 3, 4], [123456789, 0]]) {
      const bytes = writeNpy({ dtype: "uint8", shape, data: new Uint8Array(shape.reduce((a, b) => a * b, 1)) });
      const h = parseNpyHeader(bytes, FILE);
      expect(h.version).toEqual([1, 0]);
      expect(h.dataOffset % 64).toBe(0);
      expect(bytes[h.dataOffset - 1]).toBe(0x0a);
      // The header alone (for writers that stream the data) is the same bytes.
      expect(encodeNpyHeader("uint8", shape)).toEqual(bytes.subarray(0, h.dataOffset));
    }
  });

  test("writeNpy switches to version 2.0 when the header exceeds 65535 bytes", () => {
    const shape = new Array<number>(30000).fill(1);
    const bytes = writeNpy({ dtype: "int16", shape, data: [-7] });
    const h = parseNpyHeader(bytes, FILE);
    expect(h.version).toEqual([2, 0]);
    expect(h.dataOffset % 64).toBe(0);
    const back = readNpy(bytes, FILE);
    expect(back.shape.length).toBe(30000);
    expectClose(back.data, [-7], 0);
  });

  test("data at a misaligned byte offset decodes the same", () => {
    const data = Float64Array.from([1.25, -2.5, 1e300]);
    const bytes = writeNpy({ dtype: "float64", shape: [3], data });
    const shifted = new Uint8Array(bytes.length + 3);
    shifted.set(bytes, 3);
    expectClose(readNpy(shifted.subarray(3), FILE).data, data, 0);
  });

  test("writeNpy rejects data that does not fill the shape", () => {
    expect(() => writeNpy({ dtype: "float32", shape: [2, 2], data: [1, 2, 3] })).toThrow(/holds 4 elements, data has 3/);
  });
});

describe("npy format versions", () => {
  const values = Float32Array.from([1.5, -2, 0.125]);
  const body = new Uint8Array(values.buffer);

  test("1.0, written by hand", () => {
    const a = readNpy(npyBytes(1, dict("<f4", "(3,)"), body), FILE);
    expect(a.shape).toEqual([3]);
    expectClose(a.data, values, 0);
  });

  test("2.0: a four-byte header length", () => {
    const bytes = npyBytes(2, dict("<f4", "(3,)"), body);
    const h = parseNpyHeader(bytes, FILE);
    expect(h.version).toEqual([2, 0]);
    expect(h.dataOffset).toBe(12 + dict("<f4", "(3,)").length);
    expectClose(readNpy(bytes, FILE).data, values, 0);
  });

  test("3.0: a utf-8 header", () => {
    const bytes = npyBytes(3, dict("<f4", "(1, 3)"), body);
    const a = readNpy(bytes, FILE);
    expect(a.shape).toEqual([1, 3]);
    expectClose(a.data, values, 0);
    // The descr comes back in a message; it must read as utf-8, not as latin-1 bytes.
    expectFormatError(() => readNpy(npyBytes(3, dict("<fé", "(3,)"), body), FILE), FILE, /unsupported dtype '<fé'/);
  });

  test("'=' (native order) and '<' for one-byte types are accepted", () => {
    expectClose(readNpy(npyBytes(1, dict("=f4", "(3,)"), body), FILE).data, values, 0);
    expect(readNpy(npyBytes(1, dict("<u1", "(2,)"), Uint8Array.from([3, 250])), FILE).dtype).toBe("uint8");
  });
});

describe("float16", () => {
  // Expected bits from numpy: np.array(x, np.float32).astype(np.float16).view(np.uint16).
  const CASES: Array<[string, number, number]> = [
    ["largest finite", 65504, 0x7bff],
    ["65519 rounds down to the largest finite", 65519, 0x7bff],
    ["65520 overflows to infinity", 65520, 0x7c00],
    ["1/3 rounds to nearest", 1 / 3, 0x3555],
    ["a tie rounds to even (down)", 1 + 2 ** -11, 0x3c00],
    ["a tie rounds to even (up)", 1 + 3 * 2 ** -11, 0x3c02],
    ["half the smallest subnormal is a tie to zero", 2 ** -25, 0x0000],
    ["just above half the smallest subnormal rounds up", 2 ** -25 * (1 + 2 ** -23), 0x0001],
    ["a subnormal tie rounds to even", 3 * 2 ** -25, 0x0002],
    ["the smallest normal", 2 ** -14, 0x0400],
    ["the largest subnormal", 2 ** -14 - 2 ** -24, 0x03ff],
    ["rounding up from subnormal to normal", 2 ** -14 - 2 ** -25, 0x0400],
    ["underflow to zero", 1e-10, 0x0000],
    ["negative zero", -0, 0x8000],
    ["negative underflow keeps the sign", -1e-10, 0x8000],
    ["infinity", Infinity, 0x7c00],
    ["negative infinity", -Infinity, 0xfc00],
    ["NaN", NaN, 0x7e00],
  ];
  for (const [name, value, bits] of CASES) {
    test(`${name}: ${value} -> 0x${bits.toString(16).padStart(4, "0")}`, () => {
      expect(floatToHalf(value)).toBe(bits);
      // The same bits must land in a written file.
      const bytes = writeNpy({ dtype: "float16", shape: [1], data: [value] });
      const off = parseNpyHeader(bytes, FILE).dataOffset;
      expect(bytes[off] | (bytes[off + 1] << 8)).toBe(bits);
    });
  }

  test("decoding: subnormals, signed zero, infinities, NaN", () => {
    expect(halfToFloat(0x0001)).toBe(2 ** -24);
    expect(halfToFloat(0x03ff)).toBe(2 ** -14 - 2 ** -24);
    expect(halfToFloat(0x0400)).toBe(2 ** -14);
    expect(halfToFloat(0x7bff)).toBe(65504);
    expect(halfToFloat(0x3555)).toBeCloseTo(1 / 3, 3);
    expect(Object.is(halfToFloat(0x8000), -0)).toBe(true);
    expect(halfToFloat(0x7c00)).toBe(Infinity);
    expect(halfToFloat(0xfc00)).toBe(-Infinity);
    expect(Number.isNaN(halfToFloat(0x7e00))).toBe(true);
    expect(Number.isNaN(halfToFloat(0x7c01))).toBe(true);
  });

  test("every finite half survives decode then encode", () => {
    for (let h = 0; h < 0x10000; h++) {
      if ((h & 0x7c00) === 0x7c00 && (h & 0x3ff) !== 0) continue;
      const back = floatToHalf(halfToFloat(h));
      if (back !== h) throw new Error(`0x${h.toString(16)} came back as 0x${back.toString(16)}`);
    }
  });

  test("a float16 file reads as float32 values", () => {
    const halves = Uint16Array.from([0x3c00, 0xc000, 0x0001, 0x7bff]);
    const a = readNpy(npyBytes(1, dict("<f2", "(2, 2)"), new Uint8Array(halves.buffer)), FILE);
    expect(a.dtype).toBe("float16");
    expect(a.data).toBeInstanceOf(Float32Array);
    expectClose(a.data, [1, -2, 2 ** -24, 65504], 0);
  });
});

describe("readNpyHeader", () => {
  /** Bytes held in memory behind positioned reads, recording each read as [position, length]. */
  function counted(bytes: Uint8Array): { source: RandomAccessBytes; reads: [number, number][] } {
    const reads: [number, number][] = [];
    const source = {
      size: bytes.length,
      readAt(dst: Uint8Array, position: number) {
        reads.push([position, dst.length]);
        dst.set(bytes.subarray(position, position + dst.length));
      },
    };
    return { source, reads };
  }

  test("reads the preamble, then the header, never the data (versions 1.0 and 2.0)", () => {
    const data = new Float32Array(4096);
    for (const bytes of [writeNpy({ dtype: "float32", shape: [4096], data }), npyBytes(2, dict("<f4", "(4096,)"), new Uint8Array(data.buffer))]) {
      const { source, reads } = counted(bytes);
      const h = readNpyHeader(source, FILE);
      expect(h).toEqual(parseNpyHeader(bytes, FILE));
      expect(reads).toEqual([
        [0, 12],
        [0, h.dataOffset],
      ]);
    }
  });

  test("errors are those of parseNpyHeader, with the file size", () => {
    const bytes = npyBytes(1, dict("<f4", "(3,)"), new Uint8Array(12));
    expectFormatError(() => readNpyHeader(counted(bytes.subarray(0, 8)).source, FILE), FILE, /truncated \.npy header: 8 bytes, shorter than the preamble/);
    expectFormatError(() => readNpyHeader(counted(bytes.subarray(0, 40)).source, FILE), FILE, /truncated \.npy header: needs \d+ bytes, file has 40/);
    expectFormatError(() => readNpyHeader(counted(bytes.subarray(0, bytes.length - 1)).source, FILE), FILE, /truncated data: .* has 11/);
    expectFormatError(() => readNpyHeader(counted(new Uint8Array(0)).source, FILE), FILE, /magic/);
  });
});

describe("npy errors name the file and the problem", () => {
  const f4 = new Uint8Array(new Float32Array([1, 2, 3]).buffer);

  test("missing magic", () => {
    const bytes = npyBytes(1, dict("<f4", "(3,)"), f4);
    bytes[1] = 0x4f;
    expectFormatError(() => readNpy(bytes, "bad.npy"), "bad.npy", /not a \.npy file.*magic/);
    expectFormatError(() => readNpy(new Uint8Array(0), "empty.npy"), "empty.npy", /magic/);
  });

  test("unknown version", () => {
    expectFormatError(() => readNpy(npyBytes(4, dict("<f4", "(3,)"), f4), FILE), FILE, /unsupported \.npy format version 4\.0.*1\.0, 2\.0, 3\.0/);
  });

  test("big-endian dtype", () => {
    expectFormatError(() => readNpy(npyBytes(1, dict(">f4", "(3,)"), f4), FILE), FILE, /big-endian dtype '>f4'/);
  });

  test("Fortran order", () => {
    expectFormatError(() => readNpy(npyBytes(1, dict("<f4", "(3, 1)", "True"), f4), FILE), FILE, /Fortran-ordered/);
  });

  test("object dtype", () => {
    expectFormatError(() => readNpy(npyBytes(1, dict("|O", "(3,)"), f4), FILE), FILE, /object arrays \('\|O'\)/);
  });

  test("structured dtype (descr a list)", () => {
    const text = "{'descr': [('x', '<f4'), ('y', '<i4')], 'fortran_order': False, 'shape': (3,), }\n";
    expectFormatError(() => readNpy(npyBytes(1, text, new Uint8Array(24)), FILE), FILE, /structured or object dtypes/);
  });

  test("unsupported simple dtype lists the supported ones", () => {
    expectFormatError(() => readNpy(npyBytes(1, dict("<c8", "(3,)"), f4), FILE), FILE, /unsupported dtype '<c8' \(supported: .*<f4/);
  });

  test("truncated header", () => {
    const bytes = npyBytes(1, dict("<f4", "(3,)"), f4);
    expectFormatError(() => readNpy(bytes.subarray(0, 40), FILE), FILE, /truncated \.npy header/);
    expectFormatError(() => readNpy(bytes.subarray(0, 8), FILE), FILE, /truncated \.npy header/);
    const v2 = npyBytes(2, dict("<f4", "(3,)"), f4);
    expectFormatError(() => readNpy(v2.subarray(0, 11), FILE), FILE, /truncated \.npy header/);
  });

  test("truncated data", () => {
    const bytes = npyBytes(1, dict("<f4", "(3,)"), f4);
    expectFormatError(() => readNpy(bytes.subarray(0, bytes.length - 1), FILE), FILE, /truncated data: shape \(3\) of float32 needs 12 bytes.*has 11/);
  });

  test("malformed header text and a bad shape", () => {
    expectFormatError(() => readNpy(npyBytes(1, "{'descr': '<f4', 'fortran_order' False}\n"), FILE), FILE, /malformed \.npy header/);
    expectFormatError(() => readNpy(npyBytes(1, dict("<f4", "(-3,)"), f4), FILE), FILE, /'shape'/);
    expectFormatError(() => readNpy(npyBytes(1, dict("<f4", "('3',)"), f4), FILE), FILE, /'shape'/);
  });
});

describe("official noise files", () => {
  /** Fraction of captions whose image index differs from caption_id // 5 (the moved captions). */
  function noiseFraction(ids: ArrayLike<number>): number {
    let moved = 0;
    for (let i = 0; i < ids.length; i++) if (ids[i] !== Math.floor(i / 5)) moved++;
    return moved / ids.length;
  }

  for (const ratio of [0.2, 0.4, 0.6]) {
    test(`f30k_precomp_${ratio}.npy`, () => {
      const file = resolve(SHARED_DIR, `noise_index/f30k_precomp_${ratio}.npy`);
      const arr = readNpy(new Uint8Array(readFileSync(file)), file);
      expect(arr.dtype).toBe("int64");
      expect(arr.shape).toEqual([145000]);
      const ids = toIndexArray(arr, file);
      let min = Infinity;
      let max = -Infinity;
      for (const v of ids) {
        min = Math.min(min, v);
        max = Math.max(max, v);
      }
      expect(min).toBeGreaterThanOrEqual(0);
      expect(max).toBeLessThan(29000);
      expect(Math.abs(noiseFraction(ids) - ratio)).toBeLessThanOrEqual(0.01);
    });
  }

  test("the header alone, with the file size, is enough to locate the data", () => {
    const file = resolve(SHARED_DIR, "noise_index/f30k_precomp_0.2.npy");
    const bytes = new Uint8Array(readFileSync(file));
    const h = parseNpyHeader(bytes.subarray(0, 256), file, bytes.length);
    expect(h.dtype).toBe("int64");
    expect(h.dataOffset + h.dataBytes).toBe(bytes.length);
    expectFormatError(() => parseNpyHeader(bytes.subarray(0, 256), file), file, /truncated data/);
  });

  test("e2e noise_0.4.npy: 2000 captions over 400 images", () => {
    const file = resolve(REFERENCE_DIR, "e2e/noise_0.4.npy");
    const arr = readNpy(new Uint8Array(readFileSync(file)), file);
    expect(arr.dtype).toBe("int64");
    expect(arr.shape).toEqual([2000]);
    const ids = toIndexArray(arr, file);
    for (const v of ids) {
      expect(v).toBeGreaterThanOrEqual(0);
      expect(v).toBeLessThan(400);
    }
    expect(Math.abs(noiseFraction(ids) - 0.4)).toBeLessThanOrEqual(0.01);
  });
});
