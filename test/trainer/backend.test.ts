/** Backend selection: tensorflow (tfjs-node-gpu, then tfjs-node) when it loads, else wasm, else cpu. */
import { describe, expect, test } from "bun:test";
import { type BackendLoaders, BackendUnavailableError, initBackend } from "../../trainer/backend";

function loaders(available: { gpu?: boolean; node?: boolean; wasm?: boolean; cpu?: boolean }, log: string[] = []): BackendLoaders {
  return {
    async native(pkg) {
      log.push(pkg);
      const ok = pkg === "@tensorflow/tfjs-node-gpu" ? available.gpu : available.node;
      if (!ok) throw new Error(`The Node.js native addon module (tfjs_binding.node) can not be found (${pkg})`);
    },
    async wasm() {
      log.push("wasm");
      if (!available.wasm) throw new Error("no wasm");
    },
    async cpu() {
      log.push("cpu");
      if (!available.cpu) throw new Error("no cpu");
    },
    async activate(name) {
      log.push(`activate ${name}`);
      return true;
    },
  };
}

describe("initBackend", () => {
  test("auto prefers tfjs-node-gpu, then tfjs-node", async () => {
    expect((await initBackend("auto", loaders({ gpu: true, node: true, wasm: true, cpu: true }))).provider).toBe("@tensorflow/tfjs-node-gpu");
    const r = await initBackend("auto", loaders({ node: true, wasm: true, cpu: true }));
    expect(r.name).toBe("tensorflow");
    expect(r.provider).toBe("@tensorflow/tfjs-node");
  });

  test("auto falls back to wasm and says why", async () => {
    const log: string[] = [];
    const r = await initBackend("auto", loaders({ wasm: true, cpu: true }, log));
    expect(r.name).toBe("wasm");
    expect(r.reason).toContain("tfjs_binding.node");
    expect(log).toEqual(["@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node", "wasm", "activate wasm"]);
  });

  test("auto falls back to cpu when wasm fails", async () => {
    const r = await initBackend("auto", loaders({ cpu: true }));
    expect(r.name).toBe("cpu");
    expect(r.reason).toContain("wasm: no wasm");
  });

  test("an explicit choice that cannot load is an error naming what to install", async () => {
    await expect(initBackend("tensorflow", loaders({ wasm: true, cpu: true }))).rejects.toThrow(BackendUnavailableError);
    await expect(initBackend("tensorflow", loaders({ wasm: true, cpu: true }))).rejects.toThrow(/bun pm trust @tensorflow\/tfjs-node-gpu/);
    await expect(initBackend("wasm", loaders({ cpu: true }))).rejects.toThrow(/--backend wasm is unavailable/);
  });

  test("an explicit wasm or cpu choice never tries the native packages", async () => {
    const log: string[] = [];
    await initBackend("cpu", loaders({ gpu: true, cpu: true }, log));
    expect(log).toEqual(["cpu", "activate cpu"]);
  });

  test("an unknown name lists the valid ones", async () => {
    await expect(initBackend("gpu" as never, loaders({}))).rejects.toThrow(/valid: auto, tensorflow, wasm, cpu/);
  });

  test("the real loaders: tfjs-node's native binding is not installed here, auto picks wasm", async () => {
    const r = await initBackend("auto");
    expect(["wasm", "tensorflow"]).toContain(r.name);
  });
});
