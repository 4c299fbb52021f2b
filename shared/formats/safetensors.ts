/**
 * safetensors: an 8-byte little-endian header length, a JSON header naming every tensor's dtype,
 * shape and byte range, then the raw little-endian data. The reference fixtures, the
 * checkpoints and the float32 exports of this project use it.
 */
import { type DType, DTYPE_BYTES, FormatError, type NdArray, type TypedArray, decodeElements, encodeElements, numel } from "./ndarray";

const ST_TO_DTYPE: Record<string, DType> = {
  F32: "float32",
  F64: "float64",
  F16: "float16",
  I64: "int64",
  I32: "int32",
  I16: "int16",
  I8: "int8",
  U8: "uint8",
  BOOL: "bool",
};
const DTYPE_TO_ST: Record<DType, string> = Object.fromEntries(Object.entries(ST_TO_DTYPE).map(([k, v]) => [v, k])) as Record<DType, string>;

/** Refuse absurd headers before parsing them (the reference implementation caps at 100 MB). */
const MAX_HEADER_BYTES = 100_000_000;

export interface Safetensors {
  tensors: Map<string, NdArray>;
  metadata: Record<string, string>;
}

/** Reads every tensor of a safetensors file; offsets, sizes and overlaps are checked. */
export function readSafetensors(bytes: Uint8Array, file: string): Safetensors {
  if (bytes.length < 8) throw new FormatError(file, `not a safetensors file: ${bytes.length} bytes, shorter than the 8-byte header length`);
  const dv = new DataView(bytes.buffer, bytes.byteOffset, 8);
  const headerLen = dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32;
  if (headerLen > MAX_HEADER_BYTES) throw new FormatError(file, `header length ${headerLen} exceeds ${MAX_HEADER_BYTES} bytes`);
  if (8 + headerLen > bytes.length) throw new FormatError(file, `truncated: header of ${headerLen} bytes, file has ${bytes.length - 8} after the length`);
  let header: Record<string, unknown>;
  try {
    header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + headerLen)));
  } catch (e) {
    throw new FormatError(file, `header is not valid JSON (${(e as Error).message})`);
  }
  if (header === null || typeof header !== "object" || Array.isArray(header)) throw new FormatError(file, "header is not a JSON object");
  const dataStart = 8 + headerLen;
  const dataLen = bytes.length - dataStart;
  const tensors = new Map<string, NdArray>();
  let metadata: Record<string, string> = {};
  const ranges: Array<[number, number, string]> = [];
  for (const [name, info] of Object.entries(header)) {
    if (name === "__metadata__") {
      if (info === null || typeof info !== "object" || Array.isArray(info) || Object.values(info).some((v) => typeof v !== "string")) {
        throw new FormatError(file, "__metadata__ must map strings to strings");
      }
      metadata = info as Record<string, string>;
      continue;
    }
    const t = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const dtype = ST_TO_DTYPE[String(t?.dtype)];
    if (!dtype) throw new FormatError(file, `tensor '${name}': unsupported dtype ${JSON.stringify(t?.dtype)} (supported: ${Object.keys(ST_TO_DTYPE).join(", ")})`);
    if (!Array.isArray(t.shape) || t.shape.some((d) => !Number.isInteger(d) || d < 0)) throw new FormatError(file, `tensor '${name}': invalid shape ${JSON.stringify(t.shape)}`);
    const offs = t.data_offsets;
    if (!Array.isArray(offs) || offs.length !== 2 || !offs.every((o) => Number.isInteger(o) && o >= 0) || offs[0] > offs[1]) {
      throw new FormatError(file, `tensor '${name}': invalid data_offsets ${JSON.stringify(offs)}`);
    }
    const [begin, end] = offs as [number, number];
    const shape = t.shape as number[];
    const expected = numel(shape) * DTYPE_BYTES[dtype];
    if (end - begin !== expected) {
      throw new FormatError(file, `tensor '${name}': data_offsets span ${end - begin} bytes, shape [${shape}] of ${dtype} needs ${expected}`);
    }
    if (end > dataLen) throw new FormatError(file, `tensor '${name}': data_offsets end at ${end}, past the ${dataLen} bytes of data (truncated file?)`);
    ranges.push([begin, end, name]);
    tensors.set(name, { dtype, shape, data: decodeElements(dtype, bytes.subarray(dataStart + begin, dataStart + end), numel(shape)) });
  }
  ranges.sort((a, b) => a[0] - b[0]);
  for (let i = 1; i < ranges.length; i++) {
    if (ranges[i][0] < ranges[i - 1][1]) throw new FormatError(file, `tensors '${ranges[i - 1][2]}' and '${ranges[i][2]}' overlap`);
  }
  return { tensors, metadata };
}

export interface TensorToWrite {
  dtype: DType;
  shape: readonly number[];
  data: TypedArray | number[];
}

/** Writes tensors (in the given order) and string metadata as safetensors bytes. */
export function writeSafetensors(tensors: Iterable<[string, TensorToWrite]> | Map<string, TensorToWrite>, metadata?: Record<string, string>): Uint8Array {
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) header.__metadata__ = metadata;
  const bodies: Uint8Array[] = [];
  let offset = 0;
  for (const [name, t] of tensors) {
    if (name === "__metadata__") throw new Error("writeSafetensors: '__metadata__' is reserved");
    if (numel(t.shape) !== t.data.length) throw new Error(`writeSafetensors: tensor '${name}' has shape [${t.shape}] but ${t.data.length} elements`);
    const body = encodeElements(t.dtype, t.data);
    header[name] = { dtype: DTYPE_TO_ST[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + body.length] };
    bodies.push(body);
    offset += body.length;
  }
  let json = JSON.stringify(header);
  // Pad with spaces so that the data starts 8-byte aligned, as the reference writer does.
  json += " ".repeat((8 - ((8 + new TextEncoder().encode(json).length) % 8)) % 8);
  const head = new TextEncoder().encode(json);
  const out = new Uint8Array(8 + head.length + offset);
  new DataView(out.buffer).setUint32(0, head.length, true);
  out.set(head, 8);
  let p = 8 + head.length;
  for (const b of bodies) {
    out.set(b, p);
    p += b.length;
  }
  return out;
}
