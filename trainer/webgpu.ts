/**
 * WebGPU for Bun: Dawn's node binding (npm `webgpu`) as the GPU, tfjs-backend-webgpu on the
 * adapter chosen here, and SwiftShader (a Vulkan driver that runs on the CPU) when there is no GPU.
 *
 * Locating SwiftShader at run time. Debian's `chromium` package ships it in /usr/lib/chromium:
 * the driver (libvk_swiftshader.so), its manifest (vk_swiftshader_icd.json) and a Vulkan loader
 * (libvulkan.so.1). Dawn dlopens "libvulkan.so.1" by name, and the loader reads VK_ICD_FILENAMES
 * when Dawn creates its Vulkan instance. Setting LD_LIBRARY_PATH from inside the process does
 * nothing (the dynamic linker read it at start-up), and neither does assigning process.env in Bun
 * (it does not reach the C environment the loader reads). What works, measured here:
 * - the loader: dlopen it by absolute path first (bun:ffi); a later dlopen("libvulkan.so.1") by
 *   name then returns the library already loaded under that soname. A system libvulkan1 is used
 *   when there is one; chromium's is taken only when none is found by name.
 * - the driver: setenv(3) through bun:ffi before the instance that should see it is created.
 * A process started with LD_LIBRARY_PATH and VK_ICD_FILENAMES set is left as it is.
 *
 * Reading back synchronously. tfjs-backend-webgpu's readSync draws through an OffscreenCanvas,
 * which Bun lacks, and the model reads scalars and small results with dataSync. Dawn completes a
 * mapAsync only when its instance processes events, which it schedules with setImmediate; the
 * wrapper installed here keeps those callbacks so that readSync can run them in a loop until the
 * staging buffer is mapped (the same copy-and-map that tfjs's own async read does).
 *
 * Kernels. tfjs-backend-webgpu 4.22 has every kernel PC2 uses, forward and backward
 * (UnsortedSegmentSum, the embedding's gradient, included), and each meets the reference suite's
 * tolerances with every op run as a shader (test/reference.test.ts), so none is replaced here.
 * What is replaced is memory management: its buffer pool never frees (boundFreePool).
 */
import { existsSync, readdirSync, readFileSync } from "node:fs";
import { dirname, join, resolve } from "node:path";
import * as tf from "../shared/model/tf";

/** What an adapter says about itself (GPUAdapterInfo), plus whether it is a software fallback. */
export interface AdapterSummary {
  vendor: string;
  architecture: string;
  device: string;
  description: string;
  /** A CPU implementation (SwiftShader, lavapipe): correct but slow, never picked by `auto`. */
  software: boolean;
}

/** Folders where Debian/Ubuntu/Fedora chromium packages put SwiftShader; PC2_SWIFTSHADER_DIR goes first. */
export const SWIFTSHADER_DIRS = ["/usr/lib/chromium", "/usr/lib/chromium-browser", "/usr/lib64/chromium-browser", "/usr/lib64/chromium"];

/** What to run where no adapter at all is found (no GPU driver, no SwiftShader). */
export const SWIFTSHADER_HINT = "apt-get install -y chromium (Debian's chromium package brings SwiftShader, a CPU Vulkan driver)";

export interface SwiftShader {
  /** The ICD manifest for VK_ICD_FILENAMES. */
  icd: string;
  /** Chromium's own Vulkan loader, for systems without libvulkan1; null when absent. */
  loader: string | null;
}

/** SwiftShader's manifest and loader in the first folder that has a manifest whose driver exists. */
export function findSwiftShader(dirs: string[] = swiftShaderDirs()): SwiftShader | null {
  for (const dir of dirs) {
    const icd = join(dir, "vk_swiftshader_icd.json");
    if (!existsSync(icd)) continue;
    try {
      const lib = String(JSON.parse(readFileSync(icd, "utf8"))?.ICD?.library_path ?? "");
      if (!lib || !existsSync(resolve(dirname(icd), lib))) continue;
    } catch {
      continue;
    }
    const loader = join(dir, "libvulkan.so.1");
    return { icd, loader: existsSync(loader) ? loader : null };
  }
  return null;
}

function swiftShaderDirs(): string[] {
  const own = process.env.PC2_SWIFTSHADER_DIR;
  return own ? [own, ...SWIFTSHADER_DIRS] : SWIFTSHADER_DIRS;
}

/**
 * Vulkan driver manifests where the loader looks by default on Linux (XDG config and data dirs,
 * /etc/vulkan). Empty means no GPU driver: no instance needs to be created to learn that.
 */
export function systemVulkanDrivers(): string[] {
  const env = process.env;
  const config = (env.XDG_CONFIG_DIRS || "/etc/xdg").split(":");
  const data = (env.XDG_DATA_DIRS || "/usr/local/share:/usr/share").split(":");
  const dirs = [...config, "/etc", ...data, env.HOME ? join(env.HOME, ".local/share") : ""].filter(Boolean).map((d) => join(d, "vulkan", "icd.d"));
  const out: string[] = [];
  for (const d of dirs) {
    try {
      for (const f of readdirSync(d)) if (f.endsWith(".json")) out.push(join(d, f));
    } catch {
      // absent folder
    }
  }
  return out;
}

/** True for adapters that run on the CPU: Dawn's fallback flag, or a known software driver's name. */
export function isSoftwareAdapter(info: Partial<Omit<AdapterSummary, "software">> & { isFallbackAdapter?: boolean }, fallbackFlag = false): boolean {
  if (fallbackFlag || info.isFallbackAdapter) return true;
  const text = [info.vendor, info.architecture, info.device, info.description].join(" ").toLowerCase();
  return /swiftshader|llvmpipe|lavapipe|software rasterizer|microsoft basic render/.test(text);
}

/** "google swiftshader (SwiftShader driver 5.0.0; software)". */
export function describeAdapter(a: AdapterSummary): string {
  const name = [a.vendor, a.architecture].filter(Boolean).join(" ") || "unknown vendor";
  const details = [a.description, a.device && a.device !== a.description ? `device ${a.device}` : "", a.software ? "software" : ""].filter(Boolean).join("; ");
  return details ? `${name} (${details})` : name;
}

// ---------------------------------------------------------------------------------------------
// Native glue (bun:ffi): setenv(3) and dlopen by path.

const held: unknown[] = [];

async function ffi() {
  return import("bun:ffi");
}

/** setenv(3): Bun's process.env does not reach the C environment that the Vulkan loader reads. */
async function setNativeEnv(name: string, value: string): Promise<void> {
  process.env[name] = value;
  if (process.platform !== "linux") return;
  const { dlopen, ptr } = await ffi();
  const libc = dlopen("libc.so.6", { setenv: { args: ["ptr", "ptr", "i32"], returns: "i32" } });
  const n = Buffer.from(`${name}\0`);
  const v = Buffer.from(`${value}\0`);
  const rc = libc.symbols.setenv(ptr(n), ptr(v), 1);
  libc.close();
  if (rc !== 0) throw new Error(`setenv(${name}) failed`);
}

/** Loads a Vulkan loader (by name or path) and keeps it loaded; false when it cannot be opened. */
async function openVulkanLoader(nameOrPath: string): Promise<boolean> {
  if (process.platform !== "linux") return true;
  const { dlopen } = await ffi();
  try {
    held.push(dlopen(nameOrPath, { vkGetInstanceProcAddr: { args: ["ptr", "ptr"], returns: "ptr" } }));
    return true;
  } catch {
    return false;
  }
}

// ---------------------------------------------------------------------------------------------
// Dawn.

interface Dawn {
  create(flags: string[]): GPU;
  globals: Record<string, unknown>;
}

let dawn: Dawn | null = null;
/** Dawn's event-processing callbacks, queued by setImmediate and run early by pumpDawn(). */
const dawnTicks = new Set<() => void>();

/**
 * The addon: PC2_DAWN_NODE names a dawn.node to load (a bundled build carries it beside itself),
 * else the `webgpu` package's own prebuilt one.
 */
async function loadDawn(): Promise<Dawn> {
  if (dawn) return dawn;
  installTickCapture();
  const own = process.env.PC2_DAWN_NODE;
  let mod: Dawn;
  try {
    mod = (own ? require(resolve(own)) : await import("webgpu")) as Dawn;
  } catch (e) {
    throw new Error(`Dawn's addon did not load (${String((e as Error)?.message ?? e).split("\n")[0]}); reinstall the webgpu package, or set PC2_DAWN_NODE to a dawn.node`);
  }
  // GPUBufferUsage, GPUMapMode, … are globals in a browser; tfjs-backend-webgpu reads them so.
  for (const [k, v] of Object.entries(mod.globals)) if (!(k in globalThis)) (globalThis as Record<string, unknown>)[k] = v;
  dawn = mod;
  return mod;
}

/**
 * Wraps setImmediate so that the callbacks Dawn schedules (native functions) stay reachable:
 * each runs once, either from the event loop as usual or earlier from pumpDawn().
 */
function installTickCapture() {
  const g = globalThis as { setImmediate: (fn: (...a: unknown[]) => void, ...args: unknown[]) => unknown; __pc2DawnTicks?: boolean };
  if (g.__pc2DawnTicks) return;
  g.__pc2DawnTicks = true;
  const original = g.setImmediate;
  const wrapped = function (fn: (...a: unknown[]) => void, ...args: unknown[]) {
    if (typeof fn !== "function" || args.length > 0 || !Function.prototype.toString.call(fn).includes("[native code]")) return original(fn, ...args);
    const once = () => {
      if (dawnTicks.delete(once)) fn();
    };
    dawnTicks.add(once);
    return original(once);
  };
  g.setImmediate = Object.assign(wrapped, original);
}

/** Runs Dawn's pending event processing now (maps complete, promises settle); false when none was pending. */
function pumpDawn(): boolean {
  if (dawnTicks.size === 0) return false;
  for (const t of [...dawnTicks]) t();
  return true;
}

const sleeper = new Int32Array(new SharedArrayBuffer(4));

/** Blocks until the buffer is mapped for reading; throws on a failed map or after timeoutMs. */
export function waitMappedSync(buffer: GPUBuffer, timeoutMs = 120_000): void {
  let failure: unknown = null;
  buffer.mapAsync(GPUMapMode.READ).catch((e: unknown) => {
    failure = e ?? new Error("mapAsync failed");
  });
  const start = performance.now();
  for (let spin = 0; buffer.mapState !== "mapped"; spin++) {
    if (failure) throw failure;
    pumpDawn();
    // After a short busy wait, sleep in growing slices up to 1 ms: a GPU's readback is done in
    // microseconds, while SwiftShader computes on the CPU and needs the cores (a pure spin made a
    // SwiftShader training step 3x slower on 2 cores).
    if (spin > 16) Atomics.wait(sleeper, 0, 0, Math.min(1, 0.01 * 1.25 ** (spin - 16)));
    if (performance.now() - start > timeoutMs) throw new Error(`WebGPU readback: buffer not mapped after ${timeoutMs} ms`);
  }
}

// ---------------------------------------------------------------------------------------------
// Adapter selection.

export interface AdapterSearch {
  adapter: GPUAdapter | null;
  summary: AdapterSummary | null;
  /** What was looked at and why it was passed over, for the backend's reason. */
  notes: string[];
}

function summarize(adapter: GPUAdapter): AdapterSummary {
  const info = (adapter as unknown as { info?: GPUAdapterInfo & { isFallbackAdapter?: boolean } }).info ?? ({} as GPUAdapterInfo);
  const fallback = Boolean((adapter as unknown as { isFallbackAdapter?: boolean }).isFallbackAdapter);
  const s = { vendor: info.vendor ?? "", architecture: info.architecture ?? "", device: info.device ?? "", description: info.description ?? "" };
  return { ...s, software: isSoftwareAdapter({ ...s, isFallbackAdapter: (info as { isFallbackAdapter?: boolean }).isFallbackAdapter }, fallback) };
}

/** The GPU object (Dawn instance) that gave each adapter; tfjs reads it back as navigator.gpu. */
const gpuOf = new WeakMap<GPUAdapter, GPU>();

async function requestAdapter(): Promise<GPUAdapter | null> {
  const d = await loadDawn();
  const gpu = d.create([]);
  const adapter = await gpu.requestAdapter({ powerPreference: "high-performance" });
  if (adapter) gpuOf.set(adapter, gpu);
  return adapter;
}

/**
 * Finds a WebGPU adapter: a hardware one first (system drivers as they are); with allowSoftware
 * and no hardware adapter, SwiftShader from a chromium install. Never throws for a missing GPU:
 * `adapter` is then null and `notes` says why.
 */
export async function findAdapter(options: { allowSoftware: boolean }): Promise<AdapterSearch> {
  const notes: string[] = [];
  const userChoseDriver = Boolean(process.env.VK_ICD_FILENAMES || process.env.VK_DRIVER_FILES);
  const swift = process.platform === "linux" ? findSwiftShader() : null;

  // A Vulkan loader by name (libvulkan1), else chromium's: it finds the system's GPU drivers too.
  let loader = await openVulkanLoader("libvulkan.so.1");
  if (!loader && swift?.loader) loader = await openVulkanLoader(swift.loader);
  if (!loader) notes.push("no Vulkan loader (libvulkan.so.1: apt-get install -y libvulkan1, or chromium, which bundles one)");

  let found: GPUAdapter | null = null;
  const drivers = userChoseDriver || process.platform !== "linux" ? ["(given)"] : systemVulkanDrivers();
  if (loader && drivers.length === 0) notes.push("no Vulkan GPU driver installed (no manifest in /usr/share/vulkan/icd.d, /etc/vulkan/icd.d)");
  if (loader && drivers.length > 0) {
    found = await requestAdapter();
    if (!found) notes.push(userChoseDriver ? `no adapter from the Vulkan driver named by VK_ICD_FILENAMES/VK_DRIVER_FILES` : "no GPU adapter from the system's Vulkan drivers");
    else if (summarize(found).software && !options.allowSoftware) notes.push(`only a software adapter: ${describeAdapter(summarize(found))}`);
  }
  if ((!found || summarize(found).software) && !options.allowSoftware) return { adapter: found, summary: found ? summarize(found) : null, notes };
  if (found) return { adapter: found, summary: summarize(found), notes };

  if (userChoseDriver) return { adapter: null, summary: null, notes };
  if (!swift) {
    notes.push(`no SwiftShader (looked in ${swiftShaderDirs().join(", ")}; ${SWIFTSHADER_HINT})`);
    return { adapter: null, summary: null, notes };
  }
  await setNativeEnv("VK_ICD_FILENAMES", swift.icd);
  if (!loader && !(await openVulkanLoader(swift.loader ?? "libvulkan.so.1"))) return { adapter: null, summary: null, notes };
  found = await requestAdapter();
  if (!found) notes.push(`SwiftShader at ${swift.icd} gave no adapter`);
  return { adapter: found, summary: found ? summarize(found) : null, notes };
}

// ---------------------------------------------------------------------------------------------
// tfjs-backend-webgpu.

interface TensorData {
  values: tf.backend_util.BackendValues | null;
  dtype: tf.DataType;
  resource: GPUBuffer | null;
  complexTensorInfos?: { real: tf.TensorInfo; imag: tf.TensorInfo };
}

/** The parts of tfjs-backend-webgpu's BufferManager used here. */
export interface BufferManager {
  acquireBuffer(size: number, usage: number, mappedAtCreation?: boolean, reuse?: boolean): GPUBuffer;
  releaseBuffer(b: GPUBuffer, reuse?: boolean): void;
  freeBuffers: Map<string, GPUBuffer[]>;
  numUsedBuffers: number;
  numFreeBuffers: number;
  numBytesAllocated: number;
  numBytesUsed: number;
  /** Added here: the most bytes in use at once since the last resetPeakBytes(). */
  peakBytesUsed?: number;
}

interface WebGpuBackendInternals {
  device: GPUDevice;
  tensorMap: { get(id: unknown): TensorData };
  bufferManager: BufferManager;
  ensureCommandEncoderReady(): void;
  endComputePassEncoder(): void;
  submitQueue(): void;
  commandEncoder: GPUCommandEncoder;
  convertAndCacheOnCPU(id: unknown, v: tf.backend_util.BackendValues): void;
  readSync(id: unknown): tf.backend_util.BackendValues;
}

/** readSync as tfjs's async read() does it (copy to a staging buffer, map), but blocking. */
function readSyncBlocking(this: WebGpuBackendInternals, dataId: unknown): tf.backend_util.BackendValues {
  const data = this.tensorMap.get(dataId);
  if (data.values != null || data.dtype === "string") return data.values!;
  if (data.dtype === "complex64") {
    const re = this.readSync(data.complexTensorInfos!.real.dataId) as Float32Array;
    const im = this.readSync(data.complexTensorInfos!.imag.dataId) as Float32Array;
    const vals = tf.backend_util.mergeRealAndImagArrays(re, im);
    this.convertAndCacheOnCPU(dataId, vals);
    return vals;
  }
  const src = data.resource!;
  const staging = this.bufferManager.acquireBuffer(src.size, GPUBufferUsage.COPY_DST | GPUBufferUsage.MAP_READ);
  this.ensureCommandEncoderReady();
  this.endComputePassEncoder();
  this.commandEncoder.copyBufferToBuffer(src, 0, staging, 0, src.size);
  this.submitQueue();
  waitMappedSync(staging);
  const bytes = staging.getMappedRange().slice(0);
  staging.unmap();
  this.bufferManager.releaseBuffer(staging);
  const vals = tf.util.convertBackendValuesAndArrayBuffer(bytes, data.dtype);
  this.convertAndCacheOnCPU(dataId, vals);
  return vals;
}

/** The free pool is never trimmed below this. */
export const FREE_POOL_FLOOR_BYTES = 64 * 2 ** 20;

/**
 * Bounds tfjs-backend-webgpu's pool of released buffers. It keeps every released buffer for reuse
 * by exact size and never frees one; captions of a new length make tensors of new sizes, so over
 * an epoch the pool collects buffers of every length seen (measured: 4,970 free buffers after a
 * tiny run). Here the free bytes are kept under the largest working set seen (at least 64 MiB),
 * destroying the oldest sizes first, so the device holds at most about twice what one step needs.
 * Also records the peak of bytes in use (gpuBufferStats, the benchmarks, the budget test).
 */
export function boundFreePool(bm: BufferManager, floorBytes = FREE_POOL_FLOOR_BYTES): void {
  const acquire = bm.acquireBuffer.bind(bm);
  const release = bm.releaseBuffer.bind(bm);
  bm.peakBytesUsed = 0;
  bm.acquireBuffer = (size, usage, mappedAtCreation = false, reuse = true) => {
    const b = acquire(size, usage, mappedAtCreation, reuse);
    if (bm.numBytesUsed > bm.peakBytesUsed!) bm.peakBytesUsed = bm.numBytesUsed;
    return b;
  };
  let workingSet = 0;
  bm.releaseBuffer = (buffer, reuse = true) => {
    workingSet = Math.max(workingSet, bm.numBytesUsed);
    release(buffer, reuse);
    const limit = Math.max(floorBytes, workingSet);
    if (bm.numBytesAllocated - bm.numBytesUsed <= limit) return;
    // Down to half the limit at once, so that trimming is rare. Emptied lists stay: tfjs's
    // releaseBuffer reads the list of a buffer's key, and ignores every release once the map is empty.
    for (const list of bm.freeBuffers.values()) {
      while (list.length > 0 && bm.numBytesAllocated - bm.numBytesUsed > limit / 2) {
        const b = list.pop()!;
        bm.numFreeBuffers--;
        bm.numBytesAllocated -= b.size;
        b.destroy();
      }
      if (bm.numBytesAllocated - bm.numBytesUsed <= limit / 2) break;
    }
  };
}

let active: { device: GPUDevice; summary: AdapterSummary } | null = null;
let registered: AdapterSummary | null = null;

/** The adapter the registered webgpu backend uses (null before registerWebGpuBackend). */
export function registeredAdapter(): AdapterSummary | null {
  return tf.findBackendFactory("webgpu") ? registered : null;
}

/**
 * Registers tfjs's "webgpu" backend on this adapter (a device with the adapter's limits, as
 * tfjs-backend-webgpu's own factory asks for), with the blocking readSync and the bounded pool.
 * The device is created when the backend is first activated.
 */
export async function registerWebGpuBackend(adapter: GPUAdapter, summary: AdapterSummary): Promise<void> {
  // navigator.gpu stays unset, so the package's own factory (which picks its own adapter) is not registered.
  const { WebGPUBackend } = await import("@tensorflow/tfjs-backend-webgpu");
  // WebGPUBackend's constructor checks that navigator.gpu exists; set it only after the import.
  const nav = ((globalThis as { navigator?: object }).navigator ??= {}) as { gpu?: GPU };
  nav.gpu = gpuOf.get(adapter);
  if (!nav.gpu) throw new Error("registerWebGpuBackend: the adapter was not found by findAdapter()");
  releaseWebGpu();
  if (tf.findBackendFactory("webgpu")) tf.removeBackend("webgpu");
  tf.registerBackend("webgpu", async () => {
    const l = adapter.limits;
    const device = await adapter.requestDevice({
      requiredFeatures: adapter.features.has("timestamp-query") ? ["timestamp-query"] : [],
      requiredLimits: {
        maxComputeWorkgroupStorageSize: l.maxComputeWorkgroupStorageSize,
        maxComputeWorkgroupsPerDimension: l.maxComputeWorkgroupsPerDimension,
        maxStorageBufferBindingSize: l.maxStorageBufferBindingSize,
        maxBufferSize: l.maxBufferSize,
        maxComputeWorkgroupSizeX: l.maxComputeWorkgroupSizeX,
        maxComputeInvocationsPerWorkgroup: l.maxComputeInvocationsPerWorkgroup,
      },
    });
    const backend = new WebGPUBackend(device, (adapter as unknown as { info: GPUAdapterInfo }).info);
    (backend as unknown as WebGpuBackendInternals).readSync = readSyncBlocking;
    boundFreePool((backend as unknown as WebGpuBackendInternals).bufferManager);
    active = { device, summary };
    return backend;
  }, 1);
  registered = summary;
}

/** The adapter behind the active webgpu backend, or null. */
export function activeAdapter(): AdapterSummary | null {
  return active?.summary ?? null;
}

export interface GpuBufferStats {
  /** Buffers in use (tensors, uniforms and staging in flight) and free in the pool. */
  used: number;
  free: number;
  /** Bytes of all buffers the pool holds, and of those in use. */
  bytesAllocated: number;
  bytesUsed: number;
  /** The most bytes in use at once since the backend started or resetPeakBytes(). */
  peakBytesUsed: number;
}

function bufferManager(): BufferManager {
  const b = (tf.findBackend("webgpu") as unknown as WebGpuBackendInternals | null)?.bufferManager;
  if (!b) throw new Error("the webgpu backend is not initialised");
  return b;
}

/** GPU buffers held by the webgpu backend's pool: in use and free, with their bytes. */
export function gpuBufferStats(): GpuBufferStats {
  const b = bufferManager();
  return { used: b.numUsedBuffers, free: b.numFreeBuffers, bytesAllocated: b.numBytesAllocated, bytesUsed: b.numBytesUsed, peakBytesUsed: b.peakBytesUsed ?? 0 };
}

/** Starts a new peak of bytes in use from the bytes in use now. */
export function resetPeakBytes(): void {
  const b = bufferManager();
  b.peakBytesUsed = b.numBytesUsed;
}

/**
 * Disposes the webgpu backend and destroys its device. Needed before a process that used WebGPU
 * can end by itself: a live device keeps Dawn's event loop going (the CLIs call process.exit).
 */
export function releaseWebGpu(): void {
  if (!active) return;
  const { device } = active;
  active = null;
  if (tf.findBackend("webgpu")) tf.removeBackend("webgpu");
  device.destroy();
}
