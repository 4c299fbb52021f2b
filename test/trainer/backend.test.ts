/**
 * Backend selection: a hardware WebGPU adapter, then tensorflow (tfjs-node-gpu, then tfjs-node)
 * when it loads, else wasm, else cpu; never a software WebGPU adapter unless asked for.
 */
import { describe, expect, test } from "bun:test";
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from "node:fs";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { type BackendLoaders, BackendUnavailableError, initBackend } from "../../trainer/backend";
import { type AdapterSummary, findSwiftShader, isSoftwareAdapter } from "../../trainer/webgpu";

const SWIFTSHADER: AdapterSummary = { vendor: "google", architecture: "swiftshader", device: "swiftshader-device-subzero-", description: "SwiftShader driver 5.0.0", software: true };
const H200: AdapterSummary = { vendor: "nvidia", architecture: "hopper", device: "NVIDIA H200", description: "NVIDIA: 550.54.15", software: false };

function loaders(available: { webgpu?: AdapterSummary; gpu?: boolean; node?: boolean; wasm?: boolean; cpu?: boolean }, log: string[] = []): BackendLoaders {
  return {
    async webgpu({ allowSoftware }) {
      log.push(`webgpu allowSoftware=${allowSoftware}`);
      if (!available.webgpu) throw new Error("no WebGPU adapter (no Vulkan GPU driver installed)");
      return available.webgpu;
    },
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
    expect(log).toEqual(["webgpu allowSoftware=false", "@tensorflow/tfjs-node-gpu", "@tensorflow/tfjs-node", "wasm", "activate wasm"]);
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
    await expect(initBackend("gpu" as never, loaders({}))).rejects.toThrow(/valid: auto, webgpu, tensorflow, wasm, cpu/);
  });

  test("auto picks a hardware WebGPU adapter first, and the reason names it", async () => {
    const log: string[] = [];
    const r = await initBackend("auto", loaders({ webgpu: H200, gpu: true, wasm: true, cpu: true }, log));
    expect(r.name).toBe("webgpu");
    expect(r.adapter).toEqual(H200);
    for (const part of ["nvidia", "hopper", "NVIDIA: 550.54.15"]) expect(r.reason).toContain(part);
    expect(log).toEqual(["webgpu allowSoftware=false", "activate webgpu"]);
  });

  test("auto never picks a SwiftShader adapter: it says so and goes on to tfjs-node, wasm, cpu", async () => {
    const log: string[] = [];
    const r = await initBackend("auto", loaders({ webgpu: SWIFTSHADER, node: true, wasm: true, cpu: true }, log));
    expect(r.name).toBe("tensorflow");
    expect(r.reason).toContain("only a software adapter, google swiftshader (SwiftShader driver 5.0.0");
    expect(log).not.toContain("activate webgpu");
    const w = await initBackend("auto", loaders({ webgpu: SWIFTSHADER, wasm: true, cpu: true }));
    expect(w.name).toBe("wasm");
    expect(w.reason).toContain("swiftshader");
  });

  test("an explicit --backend webgpu takes SwiftShader, and names it", async () => {
    const log: string[] = [];
    const r = await initBackend("webgpu", loaders({ webgpu: SWIFTSHADER, wasm: true }, log));
    expect(r.name).toBe("webgpu");
    expect(r.reason).toBe("requested; adapter google swiftshader (SwiftShader driver 5.0.0; device swiftshader-device-subzero-; software)");
    expect(log).toEqual(["webgpu allowSoftware=true", "activate webgpu"]);
  });

  test("an explicit --backend webgpu with no adapter is an error that says how to get SwiftShader", async () => {
    await expect(initBackend("webgpu", loaders({ wasm: true, cpu: true }))).rejects.toThrow(/--backend webgpu is unavailable \(webgpu: no WebGPU adapter .*apt-get install -y chromium/);
  });

  test("the real loaders: auto picks a hardware adapter, the native binding, or wasm; never SwiftShader", async () => {
    const r = await initBackend("auto");
    expect(["webgpu", "wasm", "tensorflow"]).toContain(r.name);
    if (r.name === "webgpu") expect(r.adapter!.software).toBe(false);
    else expect(r.reason).toMatch(/webgpu: /);
  });
});

describe("WebGPU adapters", () => {
  test("software adapters are told apart by Dawn's fallback flag or the driver's name", () => {
    expect(isSoftwareAdapter(SWIFTSHADER)).toBe(true);
    expect(isSoftwareAdapter({ vendor: "google", architecture: "", description: "" }, true)).toBe(true);
    expect(isSoftwareAdapter({ vendor: "", architecture: "", description: "", isFallbackAdapter: true })).toBe(true);
    expect(isSoftwareAdapter({ vendor: "mesa", architecture: "", description: "llvmpipe (LLVM 15.0.6, 256 bits)" })).toBe(true);
    expect(isSoftwareAdapter({ vendor: "", architecture: "", device: "SwiftShader Device (Subzero)", description: "" })).toBe(true);
    expect(isSoftwareAdapter(H200)).toBe(false);
    expect(isSoftwareAdapter({ vendor: "intel", architecture: "gen-12lp", description: "Intel(R) Xe Graphics" })).toBe(false);
  });

  test("findSwiftShader takes the first folder whose manifest names a driver that exists", () => {
    const root = mkdtempSync(join(tmpdir(), "pc2-swiftshader-"));
    try {
      const broken = join(root, "broken");
      const good = join(root, "good");
      mkdirSync(broken);
      mkdirSync(good);
      writeFileSync(join(broken, "vk_swiftshader_icd.json"), JSON.stringify({ ICD: { library_path: "./libvk_swiftshader.so" } }));
      writeFileSync(join(good, "vk_swiftshader_icd.json"), JSON.stringify({ ICD: { library_path: "./libvk_swiftshader.so" } }));
      writeFileSync(join(good, "libvk_swiftshader.so"), "");
      expect(findSwiftShader([join(root, "absent"), broken])).toBeNull();
      expect(findSwiftShader([broken, good])).toEqual({ icd: join(good, "vk_swiftshader_icd.json"), loader: null });
      writeFileSync(join(good, "libvulkan.so.1"), "");
      expect(findSwiftShader([good])!.loader).toBe(join(good, "libvulkan.so.1"));
    } finally {
      rmSync(root, { recursive: true, force: true });
    }
  });
});
