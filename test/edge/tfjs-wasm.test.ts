/**
 * initWasmBackend under Bun. Each case runs in a child process (fixtures/wasm-bun.ts) because the
 * tfjs backend registry is process-wide and other test files choose their own backend.
 */
import { describe, expect, test } from "bun:test";
import { join } from "node:path";

async function run(mode: string) {
  const proc = Bun.spawn([process.execPath, join(import.meta.dir, "fixtures/wasm-bun.ts"), mode], {
    stdout: "pipe",
    stderr: "pipe",
  });
  const [out, err, code] = await Promise.all([new Response(proc.stdout).text(), new Response(proc.stderr).text(), proc.exited]);
  if (code !== 0) throw new Error(`wasm-bun.ts ${mode} exited ${code}:\n${err}\n${out}`);
  return JSON.parse(out.trim().split("\n").at(-1)!);
}

describe("initWasmBackend (Bun)", () => {
  test("from bytes: 'wasm' computes matMul exactly, calls are idempotent, no leaks", async () => {
    const r = await run("bytes");
    expect(r.backend).toBe("wasm");
    expect(r.values).toEqual([19, 22, 43, 50]);
    expect(r.sumValue).toBeCloseTo(0.5 * ((999 * 1000) / 2), 0);
    expect(r.samePromise).toBe(true);
    expect(r.leaked).toBe(0);
  }, 30_000);

  test("from a precompiled module (the Workers path)", async () => {
    const r = await run("module");
    expect(r.backend).toBe("wasm");
    expect(r.values).toEqual([19, 22, 43, 50]);
  }, 30_000);

  test("leaves no process listeners behind (Emscripten's rethrowing handlers are removed)", async () => {
    expect((await run("bytes")).listenersAdded).toBe(0);
  }, 30_000);

  test("a failed start says why and can be retried", async () => {
    const r = await run("retry");
    expect(r.firstError).toContain("give module or bytes");
    expect(r.backend).toBe("wasm");
  }, 30_000);
});
