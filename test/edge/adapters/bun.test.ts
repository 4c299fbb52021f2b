import { afterAll, beforeAll, describe, expect, test } from "bun:test";
import { mkdtemp, mkdir, rm, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { WASM_BINARIES, fileAssets, tfjsWasmBytes, wasmSimdSupported } from "../../../edge/adapters/bun.ts";

let root = "";

beforeAll(async () => {
  root = await mkdtemp(join(tmpdir(), "pc2-edge-files-"));
  await mkdir(join(root, "model/gallery"), { recursive: true });
  await writeFile(join(root, "model/model.json"), '{"ok":true}');
  await writeFile(join(root, "model/gallery/ids.bin"), new Uint8Array([1, 2, 3]));
  await writeFile(join(root, "secret.txt"), "outside");
});

afterAll(async () => {
  await rm(root, { recursive: true, force: true });
});

describe("fileAssets", () => {
  test("reads files under the directory", async () => {
    const assets = fileAssets(join(root, "model"));
    expect(new TextDecoder().decode((await assets.get("model.json"))!)).toBe('{"ok":true}');
    expect(Array.from((await assets.get("gallery/ids.bin"))!)).toEqual([1, 2, 3]);
  });
  test("missing file is null", async () => {
    expect(await fileAssets(join(root, "model")).get("nope.json")).toBeNull();
  });
  test("cannot leave the directory", async () => {
    const assets = fileAssets(join(root, "model"));
    await expect(assets.get("../secret.txt")).rejects.toThrow("not a plain relative path");
    await expect(assets.get("/etc/passwd")).rejects.toThrow("not a plain relative path");
  });
  test("a directory is not a file", async () => {
    expect(await fileAssets(root).get("model")).toBeNull();
  });
});

describe("tfjsWasmBytes", () => {
  test("is the binary for this CPU and a valid wasm module", async () => {
    const bytes = await tfjsWasmBytes();
    expect(Array.from(bytes.subarray(0, 4))).toEqual([0, 97, 115, 109]); // "\0asm"
    expect(WebAssembly.validate(bytes as Uint8Array<ArrayBuffer>)).toBe(true);
    const expected = Bun.file(
      Bun.resolveSync(`@tensorflow/tfjs-backend-wasm/dist/${wasmSimdSupported() ? WASM_BINARIES.simd : WASM_BINARIES.plain}`, import.meta.dir),
    );
    expect(bytes.length).toBe(expected.size);
  });
});
