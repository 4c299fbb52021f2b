/**
 * A dense, C-ordered n-dimensional array as the file formats of this project carry it
 * (.npy and safetensors). Pure TypeScript over typed arrays: no runtime APIs.
 */

/** Element types understood by the readers and writers, named as numpy names them. */
export type DType = "float32" | "float64" | "float16" | "int64" | "int32" | "int16" | "int8" | "uint8" | "bool";

export type TypedArray =
  | Float32Array
  | Float64Array
  | BigInt64Array
  | Int32Array
  | Int16Array
  | Int8Array
  | Uint8Array;

export interface NdArray {
  dtype: DType;
  shape: number[];
  /**
   * float16 is widened to Float32Array on read (JavaScript has no portable float16 array);
   * int64 stays a BigInt64Array so that no value is silently rounded.
   */
  data: TypedArray;
}

/** Bytes per element of each dtype in a file. */
export const DTYPE_BYTES: Record<DType, number> = {
  float32: 4,
  float64: 8,
  float16: 2,
  int64: 8,
  int32: 4,
  int16: 2,
  int8: 1,
  uint8: 1,
  bool: 1,
};

/** An error in a file's content; the message always names the file. */
export class FormatError extends Error {
  constructor(
    readonly file: string,
    message: string,
  ) {
    super(`${file}: ${message}`);
    this.name = "FormatError";
  }
}

export function numel(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

/** IEEE 754 half precision to float32, bit by bit. */
export function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * 2 ** -14 * (frac / 1024);
  if (exp === 0x1f) return frac ? NaN : sign * Infinity;
  return sign * 2 ** (exp - 15) * (1 + frac / 1024);
}

const f32 = new Float32Array(1);
const u32 = new Uint32Array(f32.buffer);

/** float32 to IEEE 754 half precision with round-to-nearest-even, as numpy's astype(float16). */
export function floatToHalf(value: number): number {
  f32[0] = value;
  const x = u32[0];
  const sign = (x >>> 16) & 0x8000;
  const exp = (x >>> 23) & 0xff;
  let mant = x & 0x7fffff;
  if (exp === 0xff) return sign | 0x7c00 | (mant ? 0x200 : 0);
  let e = exp - 127 + 15;
  if (e >= 0x1f) return sign | 0x7c00;
  if (e <= 0) {
    if (e < -10) return sign;
    mant |= 0x800000;
    const shift = 14 - e;
    let half = mant >> shift;
    const rem = mant & ((1 << shift) - 1);
    const mid = 1 << (shift - 1);
    if (rem > mid || (rem === mid && half & 1)) half++;
    return sign | half;
  }
  let half = (e << 10) | (mant >> 13);
  const rem = mant & 0x1fff;
  if (rem > 0x1000 || (rem === 0x1000 && half & 1)) half++;
  return sign | half;
}

/**
 * Decodes little-endian element bytes into the natural typed array of a dtype.
 * `bytes` may have any byteOffset: misaligned input is copied first.
 */
export function decodeElements(dtype: DType, bytes: Uint8Array, count: number): TypedArray {
  const size = DTYPE_BYTES[dtype];
  let src = bytes;
  if (src.byteOffset % size !== 0) src = src.slice(0, count * size);
  const buf = src.buffer;
  const off = src.byteOffset;
  switch (dtype) {
    case "float32":
      return new Float32Array(buf, off, count);
    case "float64":
      return new Float64Array(buf, off, count);
    case "int64":
      return new BigInt64Array(buf, off, count);
    case "int32":
      return new Int32Array(buf, off, count);
    case "int16":
      return new Int16Array(buf, off, count);
    case "int8":
      return new Int8Array(buf, off, count);
    case "uint8":
    case "bool":
      return new Uint8Array(buf, off, count);
    case "float16": {
      const h = new Uint16Array(buf, off, count);
      const out = new Float32Array(count);
      for (let i = 0; i < count; i++) out[i] = halfToFloat(h[i]);
      return out;
    }
  }
}

/** Encodes a typed array as little-endian bytes of `dtype` (float16 from any float array). */
export function encodeElements(dtype: DType, data: TypedArray | number[]): Uint8Array {
  if (dtype === "float16") {
    const out = new Uint16Array(data.length);
    for (let i = 0; i < data.length; i++) out[i] = floatToHalf(Number(data[i]));
    return new Uint8Array(out.buffer);
  }
  const Ctor = {
    float32: Float32Array,
    float64: Float64Array,
    int64: BigInt64Array,
    int32: Int32Array,
    int16: Int16Array,
    int8: Int8Array,
    uint8: Uint8Array,
    bool: Uint8Array,
  }[dtype];
  let typed: TypedArray;
  if (dtype === "int64") {
    typed = data instanceof BigInt64Array ? data : BigInt64Array.from(Array.from(data as ArrayLike<number>, (v) => BigInt(v)));
  } else if (data instanceof Ctor) {
    typed = data;
  } else {
    const src = data instanceof BigInt64Array ? Array.from(data, Number) : (data as ArrayLike<number>);
    typed = (Ctor as Float32ArrayConstructor).from(src as ArrayLike<number>);
  }
  return new Uint8Array(typed.buffer, typed.byteOffset, typed.byteLength);
}

/** An integer array as plain numbers; throws if an int64 value is outside the safe integer range. */
export function toIndexArray(arr: NdArray, file: string): Int32Array | Float64Array {
  const d = arr.data;
  if (d instanceof BigInt64Array) {
    const out = new Float64Array(d.length);
    let fitsInt32 = true;
    for (let i = 0; i < d.length; i++) {
      const v = d[i];
      if (v > BigInt(Number.MAX_SAFE_INTEGER) || v < -BigInt(Number.MAX_SAFE_INTEGER)) {
        throw new FormatError(file, `int64 value ${v} at element ${i} does not fit a JavaScript number`);
      }
      out[i] = Number(v);
      if (out[i] > 2147483647 || out[i] < -2147483648) fitsInt32 = false;
    }
    return fitsInt32 ? Int32Array.from(out) : out;
  }
  if (d instanceof Int32Array) return d;
  if (d instanceof Float32Array || d instanceof Float64Array) {
    throw new FormatError(file, `expected an integer array, found ${arr.dtype}`);
  }
  return Int32Array.from(d as ArrayLike<number>);
}
