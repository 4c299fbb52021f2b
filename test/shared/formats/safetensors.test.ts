import { describe, expect, test } from "bun:test";
import { readFileSync, readdirSync, existsSync } from "node:fs";
import { resolve } from "node:path";
import { type DType, type TypedArray, numel } from "../../../shared/formats/ndarray";
import { type TensorToWrite, readSafetensors, writeSafetensors } from "../../../shared/formats/safetensors";
import { expectClose, expectFormatError } from "./expect";
import { REFERENCE_DIR } from "../../support";

const FILE = "test.safetensors";

/** A safetensors file built by hand from a header (any JSON text) and raw data bytes. */
function stBytes(header: unknown, data: Uint8Array = new Uint8Array(0)): Uint8Array {
  const json = new TextEncoder().encode(typeof header === "string" ? header : JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

const TENSORS: Array<[string, TensorToWrite & { st: string }]> = [
  ["f32", { dtype: "float32", st: "F32", shape: [2, 3], data: Float32Array.from([0, -1.5, 3.1415927, 1e-38, NaN, -Infinity]) }],
  ["f64", { dtype: "float64", st: "F64", shape: [3], data: Float64Array.from([Math.E, -1e300, Number.MIN_VALUE]) }],
  ["f16", { dtype: "float16", st: "F16", shape: [2, 2], data: Float32Array.from([1, -2, 65504, 2 ** -24]) }],
  ["i64", { dtype: "int64", st: "I64", shape: [3], data: BigInt64Array.from([-(2n ** 63n), 2n ** 63n - 1n, 5n]) }],
  ["i32", { dtype: "int32", st: "I32", shape: [1, 2, 2], data: Int32Array.from([-2147483648, 2147483647, 0, 7]) }],
  ["i16", { dtype: "int16", st: "I16", shape: [2], data: Int16Array.from([-32768, 32767]) }],
  ["i8", { dtype: "int8", st: "I8", shape: [3], data: Int8Array.from([-128, 127, 1]) }],
  ["u8", { dtype: "uint8", st: "U8", shape: [3], data: Uint8Array.from([0, 255, 9]) }],
  ["bool", { dtype: "bool", st: "BOOL", shape: [4], data: Uint8Array.from([1, 0, 1, 1]) }],
  ["scalar", { dtype: "float32", st: "F32", shape: [], data: Float32Array.from([0.5]) }],
  ["empty", { dtype: "float32", st: "F32", shape: [0, 4], data: new Float32Array(0) }],
];

describe("safetensors round trips", () => {
  const metadata = { format: "pt", note: "héllo" };
  const bytes = writeSafetensors(TENSORS, metadata);
  const st = readSafetensors(bytes, FILE);

  for (const [name, t] of TENSORS) {
    test(`${name}: ${t.dtype} [${t.shape}]`, () => {
      const back = st.tensors.get(name);
      expect(back).toBeDefined();
      expect(back!.dtype).toBe(t.dtype);
      expect(back!.shape).toEqual([...t.shape]);
      expectClose(back!.data as TypedArray, t.data, 0);
    });
  }

  test("the header names every dtype as safetensors does and aligns the data to 8 bytes", () => {
    const len = Number(new DataView(bytes.buffer).getBigUint64(0, true));
    expect((8 + len) % 8).toBe(0);
    const header = JSON.parse(new TextDecoder().decode(bytes.subarray(8, 8 + len)));
    for (const [name, t] of TENSORS) expect(header[name].dtype).toBe(t.st);
    expect(header.__metadata__).toEqual(metadata);
  });

  test("metadata comes back; tensors keep their order", () => {
    expect(st.metadata).toEqual(metadata);
    expect([...st.tensors.keys()]).toEqual(TENSORS.map(([n]) => n));
  });

  test("no metadata reads as an empty record", () => {
    const plain = readSafetensors(writeSafetensors([["x", { dtype: "int32", shape: [1], data: [3] }]]), FILE);
    expect(plain.metadata).toEqual({});
    expectClose(plain.tensors.get("x")!.data, [3], 0);
  });

  test("a header that leaves the data misaligned still decodes", () => {
    const data = Float64Array.from([1.5, -2.25]);
    const header = { a: { dtype: "F64", shape: [2], data_offsets: [0, 16] } };
    const bytes = stBytes(header, new Uint8Array(data.buffer));
    expect((8 + JSON.stringify(header).length) % 8).not.toBe(0);
    expectClose(readSafetensors(bytes, FILE).tensors.get("a")!.data, data, 0);
  });

  test("the writer refuses a shape that the data does not fill, and the reserved name", () => {
    expect(() => writeSafetensors([["x", { dtype: "float32", shape: [2, 2], data: [1, 2] }]])).toThrow(/shape \[2,2\] but 2 elements/);
    expect(() => writeSafetensors([["__metadata__", { dtype: "float32", shape: [1], data: [1] }]])).toThrow(/reserved/);
  });
});

describe("safetensors errors name the file and the problem", () => {
  const four = new Uint8Array(new Float32Array([1, 2, 3, 4]).buffer);
  const ok = (offsets: [number, number] = [0, 16]) => ({ dtype: "F32", shape: [4], data_offsets: offsets });

  test("shorter than the header length", () => {
    expectFormatError(() => readSafetensors(new Uint8Array(5), FILE), FILE, /shorter than the 8-byte header length/);
  });

  test("truncated header", () => {
    const bytes = stBytes({ x: ok() }, four);
    new DataView(bytes.buffer).setBigUint64(0, BigInt(bytes.length), true);
    expectFormatError(() => readSafetensors(bytes, FILE), FILE, /truncated: header of \d+ bytes/);
    expectFormatError(() => readSafetensors(stBytes({ x: ok() }).subarray(0, 20), FILE), FILE, /truncated/);
  });

  test("absurd header length", () => {
    const bytes = new Uint8Array(16);
    new DataView(bytes.buffer).setBigUint64(0, 2n ** 40n, true);
    expectFormatError(() => readSafetensors(bytes, FILE), FILE, /header length \d+ exceeds/);
  });

  test("invalid JSON", () => {
    expectFormatError(() => readSafetensors(stBytes('{"x": {"dtype": "F32",', four), FILE), FILE, /not valid JSON/);
    expectFormatError(() => readSafetensors(stBytes("[1, 2]", four), FILE), FILE, /not a JSON object/);
  });

  test("offsets not matching the shape", () => {
    const header = { x: { dtype: "F32", shape: [2, 3], data_offsets: [0, 16] } };
    expectFormatError(() => readSafetensors(stBytes(header, four), FILE), FILE, /tensor 'x': data_offsets span 16 bytes, shape \[2,3\] of float32 needs 24/);
  });

  test("malformed offsets and shapes", () => {
    expectFormatError(() => readSafetensors(stBytes({ x: ok([16, 0] as [number, number]) }, four), FILE), FILE, /tensor 'x': invalid data_offsets/);
    expectFormatError(() => readSafetensors(stBytes({ x: { dtype: "F32", shape: [4], data_offsets: [0] } }, four), FILE), FILE, /invalid data_offsets/);
    expectFormatError(() => readSafetensors(stBytes({ x: { dtype: "F32", shape: [-4], data_offsets: [0, 16] } }, four), FILE), FILE, /tensor 'x': invalid shape/);
    expectFormatError(() => readSafetensors(stBytes({ x: { dtype: "F32", data_offsets: [0, 16] } }, four), FILE), FILE, /invalid shape/);
  });

  test("offsets past the end", () => {
    const header = { x: ok(), y: { dtype: "F32", shape: [1], data_offsets: [16, 20] } };
    expectFormatError(() => readSafetensors(stBytes(header, four), FILE), FILE, /tensor 'y': data_offsets end at 20, past the 16 bytes of data/);
  });

  test("overlapping tensors", () => {
    const header = { a: ok([0, 16]), b: { dtype: "F32", shape: [2], data_offsets: [8, 16] } };
    expectFormatError(() => readSafetensors(stBytes(header, four), FILE), FILE, /tensors 'a' and 'b' overlap/);
  });

  test("unknown dtype", () => {
    const header = { x: { dtype: "BF16", shape: [8], data_offsets: [0, 16] } };
    expectFormatError(() => readSafetensors(stBytes(header, four), FILE), FILE, /tensor 'x': unsupported dtype "BF16" \(supported: .*F32/);
  });

  test("bad __metadata__", () => {
    for (const metadata of [{ epoch: 3 }, "text", null, ["a"]]) {
      const bytes = stBytes({ __metadata__: metadata, x: ok() }, four);
      expectFormatError(() => readSafetensors(bytes, FILE), FILE, /__metadata__ must map strings to strings/);
    }
  });
});

describe("reference safetensors files", () => {
  const root = resolve(REFERENCE_DIR, "sgraf-small");
  const cases = readdirSync(root, { withFileTypes: true })
    .filter((d) => d.isDirectory())
    .map((d) => d.name)
    .sort();

  test("the reference holds cases", () => {
    expect(cases.length).toBeGreaterThan(0);
  });

  for (const name of cases) {
    test(`${name}: every tensor decodes with the shape case.json lists`, () => {
      const caseJson = JSON.parse(readFileSync(resolve(root, name, "case.json"), "utf8")) as { tensors: Record<string, number[]> };
      const file = resolve(root, name, "tensors.safetensors");
      const st = readSafetensors(new Uint8Array(readFileSync(file)), file);
      expect([...st.tensors.keys()].sort()).toEqual(Object.keys(caseJson.tensors).sort());
      for (const [key, listed] of Object.entries(caseJson.tensors)) {
        // The reference README: batch-norm counters are "stored with shape [1]" while case.json
        // lists PyTorch's 0-d shape for them.
        const shape = key.endsWith(".num_batches_tracked") && listed.length === 0 ? [1] : listed;
        const t = st.tensors.get(key)!;
        expect({ key, shape: t.shape }).toEqual({ key, shape });
        expect(t.data.length).toBe(numel(shape));
        expectFinite(t.dtype, t.data, `${name}/${key}`);
      }
    });

    const weights = resolve(root, name, "weights.safetensors");
    if (existsSync(weights)) {
      test(`${name}: weights decode`, () => {
        const st = readSafetensors(new Uint8Array(readFileSync(weights)), weights);
        expect(st.tensors.size).toBeGreaterThan(0);
        for (const [key, t] of st.tensors) {
          expect(t.data.length).toBe(numel(t.shape));
          expectFinite(t.dtype, t.data, `${name}/weights/${key}`);
        }
      });
    }
  }
});

/** Misread offsets or dtypes show up as NaN or infinities among float values that are all finite. */
function expectFinite(dtype: DType, data: TypedArray, what: string): void {
  if (dtype !== "float32" && dtype !== "float64") return;
  for (let i = 0; i < data.length; i++) {
    if (!Number.isFinite(data[i] as number)) throw new Error(`${what}: element ${i} is ${data[i]}`);
  }
}
