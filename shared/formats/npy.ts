/**
 * NumPy `.npy` files (format versions 1.0, 2.0 and 3.0), as written by `np.save`.
 * The header can be read on its own, through positioned reads, so that a caller can reach a file of
 * many gigabytes and touch only the rows it needs (see trainer/data/features.ts).
 */
import { type DType, DTYPE_BYTES, FormatError, type NdArray, type TypedArray, decodeElements, encodeElements, numel } from "./ndarray";

const MAGIC = [0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59]; // \x93NUMPY

/** Little-endian (or byte-order-free) descriptors this reader accepts. */
const DESCR_TO_DTYPE: Record<string, DType> = {
  "<f4": "float32",
  "<f8": "float64",
  "<f2": "float16",
  "<i8": "int64",
  "<i4": "int32",
  "<i2": "int16",
  "|i1": "int8",
  "<i1": "int8",
  "|u1": "uint8",
  "<u1": "uint8",
  "|b1": "bool",
  "<b1": "bool",
};

const DTYPE_TO_DESCR: Record<DType, string> = {
  float32: "<f4",
  float64: "<f8",
  float16: "<f2",
  int64: "<i8",
  int32: "<i4",
  int16: "<i2",
  int8: "|i1",
  uint8: "|u1",
  bool: "|b1",
};

export interface NpyHeader {
  version: [number, number];
  dtype: DType;
  shape: number[];
  /** Byte offset of the first element in the file. */
  dataOffset: number;
  /** Bytes of element data the header promises. */
  dataBytes: number;
}

/** Magic (6 bytes), version (2) and header length (2 in version 1.0, 4 in 2.0 and 3.0). */
const PREAMBLE_BYTES = 12;

/** Bytes of a file reached by position, without loading it (trainer/data/features.ts's ByteSource). */
export interface RandomAccessBytes {
  readonly size: number;
  /** Fills `dst` with the bytes at `position`. */
  readAt(dst: Uint8Array, position: number): void;
}

/**
 * Reads only the header of a `.npy` file: the preamble, then as many bytes as it says the header
 * takes. Two reads, whatever the size of the data.
 */
export function readNpyHeader(source: RandomAccessBytes, file: string): NpyHeader {
  const pre = new Uint8Array(Math.min(PREAMBLE_BYTES, source.size));
  source.readAt(pre, 0);
  const { start, headerLen } = parsePreamble(pre, file);
  const head = new Uint8Array(Math.min(start + headerLen, source.size));
  source.readAt(head, 0);
  return parseNpyHeader(head, file, source.size);
}

/**
 * Parses the header of a `.npy` file. `head` must hold at least the header (for a mapped file, pass
 * the whole mapping); `fileSize` (default `head.length`) is checked against the promised data size.
 */
export function parseNpyHeader(head: Uint8Array, file: string, fileSize = head.length): NpyHeader {
  const { major, minor, start, headerLen } = parsePreamble(head, file);
  if (head.length < start + headerLen) {
    throw new FormatError(file, `truncated .npy header: needs ${start + headerLen} bytes, file has ${head.length}`);
  }
  const raw = head.subarray(start, start + headerLen);
  const text = major === 3 ? new TextDecoder("utf-8").decode(raw) : latin1(raw);
  const dict = parseHeaderDict(text, file);

  const descr = dict.descr;
  if (typeof descr !== "string") {
    throw new FormatError(file, "structured or object dtypes are not supported (descr is not a simple type string)");
  }
  if (descr.startsWith(">")) {
    throw new FormatError(file, `big-endian dtype '${descr}' is not supported; re-save the array little-endian (arr.astype('<${descr.slice(1)}'))`);
  }
  if (descr.includes("O")) {
    throw new FormatError(file, `object arrays ('${descr}') are not supported: they hold pickled Python objects`);
  }
  const dtype = DESCR_TO_DTYPE[descr.replace(/^=/, "<")];
  if (!dtype) {
    throw new FormatError(file, `unsupported dtype '${descr}' (supported: ${Object.keys(DESCR_TO_DTYPE).join(", ")})`);
  }
  if (dict.fortran_order === true) {
    throw new FormatError(file, "Fortran-ordered arrays are not supported; re-save with np.ascontiguousarray");
  }
  if (dict.fortran_order !== false) throw new FormatError(file, "header lacks a boolean 'fortran_order'");
  const shape = dict.shape;
  if (!Array.isArray(shape) || shape.some((d) => typeof d !== "number" || !Number.isInteger(d) || d < 0)) {
    throw new FormatError(file, "header lacks a valid 'shape' tuple");
  }
  const dataOffset = start + headerLen;
  const dataBytes = numel(shape as number[]) * DTYPE_BYTES[dtype];
  if (fileSize < dataOffset + dataBytes) {
    throw new FormatError(
      file,
      `truncated data: shape (${shape.join(", ")}) of ${dtype} needs ${dataBytes} bytes after the header, file has ${Math.max(0, fileSize - dataOffset)}`,
    );
  }
  return { version: [major, minor], dtype, shape: shape as number[], dataOffset, dataBytes };
}

/** The magic string, the version and the header's length; `start` is where the header text begins. */
function parsePreamble(head: Uint8Array, file: string): { major: number; minor: number; start: number; headerLen: number } {
  if (!MAGIC.every((b, i) => head[i] === b)) {
    throw new FormatError(file, "not a .npy file (missing the \\x93NUMPY magic string)");
  }
  if (head.length < 10) throw new FormatError(file, `truncated .npy header: ${head.length} bytes, shorter than the preamble`);
  const major = head[6];
  const minor = head[7];
  if (major === 1) return { major, minor, start: 10, headerLen: head[8] | (head[9] << 8) };
  if (major === 2 || major === 3) {
    if (head.length < 12) throw new FormatError(file, "truncated .npy header");
    return { major, minor, start: 12, headerLen: (head[8] | (head[9] << 8) | (head[10] << 16)) + head[11] * 2 ** 24 };
  }
  throw new FormatError(file, `unsupported .npy format version ${major}.${minor} (supported: 1.0, 2.0, 3.0)`);
}

/** Reads a whole `.npy` file held in memory. */
export function readNpy(bytes: Uint8Array, file: string): NdArray {
  const h = parseNpyHeader(bytes, file);
  const n = numel(h.shape);
  return { dtype: h.dtype, shape: h.shape, data: decodeElements(h.dtype, bytes.subarray(h.dataOffset, h.dataOffset + h.dataBytes), n) };
}

/** Writes an array as `.npy` bytes: the header of encodeNpyHeader, then the data. */
export function writeNpy(arr: { dtype: DType; shape: readonly number[]; data: TypedArray | number[] }): Uint8Array {
  if (numel(arr.shape) !== arr.data.length) {
    throw new Error(`writeNpy: shape (${arr.shape.join(", ")}) holds ${numel(arr.shape)} elements, data has ${arr.data.length}`);
  }
  const header = encodeNpyHeader(arr.dtype, arr.shape);
  const body = encodeElements(arr.dtype, arr.data);
  const out = new Uint8Array(header.length + body.length);
  out.set(header, 0);
  out.set(body, header.length);
  return out;
}

/**
 * The header `np.save` writes before C-ordered little-endian data of `dtype` and `shape`, padded to
 * a multiple of 64 bytes: version 1.0 unless the header needs more room (then 2.0). On its own for
 * writers that stream the data after it (a file larger than memory).
 */
export function encodeNpyHeader(dtype: DType, shape: readonly number[]): Uint8Array {
  const shapeText = shape.length === 1 ? `(${shape[0]},)` : `(${shape.join(", ")})`;
  const dict = `{'descr': '${DTYPE_TO_DESCR[dtype]}', 'fortran_order': False, 'shape': ${shapeText}, }`;
  let major = 1;
  let pre = 10;
  let total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  if (total - pre > 0xffff) {
    major = 2;
    pre = 12;
    total = Math.ceil((pre + dict.length + 1) / 64) * 64;
  }
  const headerLen = total - pre;
  const header = dict + " ".repeat(headerLen - dict.length - 1) + "\n";
  const out = new Uint8Array(total);
  out.set(MAGIC, 0);
  out[6] = major;
  out[7] = 0;
  if (major === 1) {
    out[8] = headerLen & 0xff;
    out[9] = headerLen >> 8;
  } else {
    new DataView(out.buffer).setUint32(8, headerLen, true);
  }
  for (let i = 0; i < header.length; i++) out[pre + i] = header.charCodeAt(i);
  return out;
}

function latin1(b: Uint8Array): string {
  let s = "";
  for (let i = 0; i < b.length; i++) s += String.fromCharCode(b[i]);
  return s;
}

type PyValue = string | number | boolean | null | PyValue[] | { [k: string]: PyValue };

/** Parses the Python literal dict of a .npy header (strings, ints, booleans, tuples, lists). */
function parseHeaderDict(text: string, file: string): Record<string, PyValue> {
  let i = 0;
  const fail = (what: string): never => {
    throw new FormatError(file, `malformed .npy header (${what} at character ${i}): ${JSON.stringify(text.trim())}`);
  };
  const ws = () => {
    while (i < text.length && /\s/.test(text[i])) i++;
  };
  const value = (): PyValue => {
    ws();
    const c = text[i];
    if (c === "'" || c === '"') {
      const end = text.indexOf(c, i + 1);
      if (end < 0) fail("unterminated string");
      const s = text.slice(i + 1, end);
      i = end + 1;
      return s;
    }
    if (c === "{") {
      i++;
      const obj: Record<string, PyValue> = {};
      for (;;) {
        ws();
        if (text[i] === "}") {
          i++;
          return obj;
        }
        const k = value();
        if (typeof k !== "string") fail("non-string key");
        ws();
        if (text[i] !== ":") fail("expected ':'");
        i++;
        obj[k as string] = value();
        ws();
        if (text[i] === ",") i++;
        else if (text[i] !== "}") fail("expected ',' or '}'");
      }
    }
    if (c === "(" || c === "[") {
      const close = c === "(" ? ")" : "]";
      i++;
      const arr: PyValue[] = [];
      for (;;) {
        ws();
        if (text[i] === close) {
          i++;
          return arr;
        }
        arr.push(value());
        ws();
        if (text[i] === ",") i++;
        else if (text[i] !== close) fail(`expected ',' or '${close}'`);
      }
    }
    const m = /^(True|False|None|-?\d+L?)/.exec(text.slice(i));
    if (!m) return fail("unexpected token");
    i += m[0].length;
    if (m[0] === "True") return true;
    if (m[0] === "False") return false;
    if (m[0] === "None") return null;
    return Number.parseInt(m[0], 10);
  };
  const v = value();
  if (v === null || typeof v !== "object" || Array.isArray(v)) fail("header is not a dict");
  return v as Record<string, PyValue>;
}
