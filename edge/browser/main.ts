/**
 * The browser page's script (bundled by edge/browser/build.ts): the retrieval of the edge API, run
 * client-side. It loads the exported model and gallery from the server's `/model/` files with
 * `fetchAssets` into the same `Pc2Engine` that answers `/v1/search/images` and `/v1/eval`, checks
 * the form with the same request schemas, and shows the hits, the recall table and the backend.
 *
 * Backend: `?backend=auto` (default) takes tfjs's WebGPU backend when the browser gives an adapter
 * and falls back to WebAssembly (edge/tfjs-wasm.ts, the binaries served beside this script);
 * `?backend=webgpu` or `?backend=wasm` asks for one and fails rather than fall back.
 *
 * Text goes through the model's own tokenizer; for a NoW jieba model that is jieba-rs, whose
 * module (served beside this script) is fetched on the first text query, not at load.
 *
 * The engine computes on the main thread: the page paints its status before each long step (on
 * wasm nothing else is drawn until the step ends; on WebGPU the page stays live between readbacks).
 */
import "@tensorflow/tfjs-backend-webgpu";
import * as v from "valibot";
import * as tf from "../../shared/model/tf";
import { fetchAssets } from "../../shared/retrieval/assets";
import { EngineInputError, type EvalResult, type Hit } from "../../shared/retrieval/engine";
import { Pc2Engine, loadPackage } from "../../shared/retrieval/pc2-engine";
import { configureJieba } from "../../shared/text/jieba";
import { DEFAULT_EDGE_LIMITS, requestSchemas } from "../schemas";
import { initWasmBackend } from "../tfjs-wasm";
import { wasmSimdSupported } from "../wasm-binaries";
import { BROWSER_FILES } from "./files";

export const BACKEND_CHOICES = ["auto", "webgpu", "wasm"] as const;
const BackendChoiceSchema = v.picklist(BACKEND_CHOICES);

interface Backend {
  name: "webgpu" | "wasm";
  detail: string;
}

const schemas = requestSchemas(DEFAULT_EDGE_LIMITS);
const $ = <T extends HTMLElement>(id: string) => document.getElementById(id) as T;
const page = $<HTMLElement>("page");
const status = $<HTMLParagraphElement>("status");
const timings = new Map<string, number>();

// --- backend -------------------------------------------------------------------------------

/** Why WebGPU cannot be used here, or null once tfjs runs on it. */
async function tryWebGpu(): Promise<{ detail: string } | { unavailable: string }> {
  // Older browsers lack navigator.gpu, and TypeScript's DOM types lack GPUAdapter.info.
  const gpu = (navigator as Partial<Navigator>).gpu;
  if (!gpu) return { unavailable: "this browser has no WebGPU (navigator.gpu)" };
  const adapter = (await gpu.requestAdapter().catch(() => null)) as { info?: { vendor?: string; architecture?: string } } | null;
  if (adapter === null) return { unavailable: "the browser offers no WebGPU adapter" };
  try {
    if (!(await tf.setBackend("webgpu"))) return { unavailable: "tfjs could not start its WebGPU backend" };
  } catch (error) {
    return { unavailable: `tfjs could not start its WebGPU backend (${(error as Error).message})` };
  }
  const info = [adapter.info?.vendor, adapter.info?.architecture].filter(Boolean).join(" ");
  return { detail: info ? `adapter: ${info}` : "" };
}

/** A file of the page (BROWSER_FILES), served under /app/. */
const pageFile = (name: string) => new URL(`app/${name}`, location.href);

async function fetchBytes(name: string): Promise<Uint8Array> {
  const url = pageFile(name);
  const response = await fetch(url);
  if (!response.ok) throw new Error(`${url.pathname}: HTTP ${response.status}`);
  return new Uint8Array(await response.arrayBuffer());
}

async function startWasm(): Promise<string> {
  const simd = wasmSimdSupported();
  const [bytes, bmm] = await Promise.all([fetchBytes(simd ? BROWSER_FILES.wasmSimd : BROWSER_FILES.wasmPlain), fetchBytes(BROWSER_FILES.bmm)]);
  await initWasmBackend({ bytes, bmm: simd ? await WebAssembly.compile(bmm as Uint8Array<ArrayBuffer>) : undefined });
  return simd ? "SIMD" : "no SIMD";
}

async function startBackend(choice: (typeof BACKEND_CHOICES)[number]): Promise<Backend> {
  let fallback = "";
  if (choice !== "wasm") {
    const gpu = await tryWebGpu();
    if ("detail" in gpu) return { name: "webgpu", detail: gpu.detail };
    if (choice === "webgpu") throw new Error(`WebGPU was asked for (?backend=webgpu), but ${gpu.unavailable}`);
    fallback = `; WebGPU unavailable: ${gpu.unavailable}`;
  }
  const wasm = await startWasm();
  return { name: "wasm", detail: `${wasm}${fallback}` };
}

// --- rendering -----------------------------------------------------------------------------

function setStatus(text: string, error = false): void {
  status.textContent = text;
  status.classList.toggle("error", error);
}

function setState(state: "loading" | "ready" | "busy" | "error"): void {
  page.dataset.state = state;
  page.setAttribute("aria-busy", String(state === "loading" || state === "busy"));
  const idle = state === "ready";
  for (const b of Array.from(document.querySelectorAll<HTMLButtonElement>("button"))) b.disabled = !idle;
}

/** Lets the browser paint the status before the main thread is busy for a while. */
const painted = () => new Promise<void>((resolve) => requestAnimationFrame(() => setTimeout(resolve, 0)));

async function timed<T>(what: string, run: () => Promise<T>): Promise<T> {
  const t0 = performance.now();
  const out = await run();
  timings.set(what, performance.now() - t0);
  $("timings").textContent = [...timings].map(([k, ms]) => `${k} ${ms < 1000 ? `${ms.toFixed(0)} ms` : `${(ms / 1000).toFixed(2)} s`}`).join(" · ");
  return out;
}

function el(tag: string, className: string, text: string): HTMLElement {
  const e = document.createElement(tag);
  e.className = className;
  e.textContent = text;
  return e;
}

function showHits(engine: Pc2Engine, hits: Hit[]): void {
  const g = engine.pkg.gallery!;
  const items = hits.map((h) => {
    const li = document.createElement("li");
    // Full precision for whoever compares with the server (the tests do).
    li.dataset.index = String(h.index);
    li.dataset.score = String(h.score);
    const caption = g.texts[h.index * g.perCaptions];
    li.append(el("span", "score", h.score.toFixed(4)), el("span", "image", `image ${h.index}`));
    if (caption) li.append(" ", el("span", "caption", `“${caption}”`));
    return li;
  });
  $("results").replaceChildren(...items);
}

function showRecall(r: EvalResult): void {
  for (const direction of ["i2t", "t2i"] as const) {
    for (const td of Array.from(document.querySelectorAll<HTMLTableCellElement>(`tr[data-direction="${direction}"] td`))) {
      const value = r[direction][td.dataset.key as keyof EvalResult["i2t"]];
      td.dataset.value = String(value);
      td.textContent = value.toFixed(1);
    }
  }
  const rsum = $("rsum");
  rsum.dataset.value = String(r.rsum);
  rsum.textContent = r.rsum.toFixed(1);
  $("recall-caption").textContent = `Official i2t/t2i recall on the first ${r.images} gallery images and their ${r.captions} captions`;
  $("recall").hidden = false;
}

/** The first issue of a failed parse, as the server words it (`field: message`). */
function firstIssue(issues: readonly v.BaseIssue<unknown>[]): string {
  const issue = issues[0]!;
  return `${v.getDotPath(issue) ?? "body"}: ${issue.message}`;
}

// --- the page ------------------------------------------------------------------------------

async function main(): Promise<void> {
  configureJieba({ url: pageFile(BROWSER_FILES.jieba) });
  const choice = v.safeParse(BackendChoiceSchema, new URLSearchParams(location.search).get("backend") ?? "auto");
  if (!choice.success) throw new Error(`?backend must be one of ${BACKEND_CHOICES.join(", ")}`);
  const backend = await timed("backend", () => startBackend(choice.output));
  $("backend").dataset.backend = backend.name;
  $("backend-name").textContent = backend.name;
  $("backend-detail").textContent = backend.detail ? `(${backend.detail})` : "";

  setStatus("Loading the model and its gallery…");
  const engine = await timed("model load", async () => new Pc2Engine(await loadPackage(fetchAssets(new URL("model/", location.href)), "/model")));
  const info = engine.info();
  const g = info.gallery;
  $("model").textContent = `nets ${info.nets.join(", ")} · ${info.dtype} · ${String(info.config.module_name)} · ` +
    (g ? `gallery of ${g.images} images, ${g.captions} captions` : "no gallery");
  if (g === null) throw new Error("this model has no gallery: there is nothing to search or evaluate");
  const query = $<HTMLInputElement>("query");
  query.value ||= engine.pkg.gallery!.texts.find((t) => t) ?? "";
  $<HTMLInputElement>("limit").max = String(g.images);

  $("search-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const body = v.safeParse(schemas.searchImages, { text: query.value, k: Number($<HTMLInputElement>("k").value) });
    if (!body.success) return setStatus(firstIssue(body.issues), true);
    void busy("Searching…", async () => {
      const { hits } = await timed("search", () => engine.searchImages({ text: body.output.text }, body.output.k, { shortlist: body.output.shortlist }));
      showHits(engine, hits);
      return `${hits.length} images for “${body.output.text}”.`;
    });
  });
  $("eval-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const raw = $<HTMLInputElement>("limit").value;
    const body = v.safeParse(schemas.evaluate, raw === "" ? {} : { limit: Number(raw) });
    if (!body.success) return setStatus(firstIssue(body.issues), true);
    const limit = body.output.limit;
    if (limit !== undefined && limit > g.images) return setStatus(`limit: ${limit} is more than the gallery's ${g.images} images`, true);
    void busy(`Evaluating on ${limit ?? g.images} images…`, async () => {
      const r = await timed("evaluation", () => engine.evaluate({ limit, shortlist: body.output.shortlist }));
      showRecall(r);
      return `Evaluated ${r.images} images and ${r.captions} captions: rsum ${r.rsum.toFixed(1)}.`;
    });
  });
  setState("ready");
  setStatus(`Ready: the engine runs on ${backend.name}.`);
}

/** Runs one request of the page: buttons off, status on, errors shown. */
async function busy(what: string, run: () => Promise<string>): Promise<void> {
  setState("busy");
  setStatus(what);
  await painted();
  try {
    setStatus(await run());
    setState("ready");
  } catch (error) {
    // A query the engine refuses (no known words, too many) is the user's to fix.
    const message = error instanceof EngineInputError ? error.message : `failed: ${(error as Error).message}`;
    setStatus(message, true);
    setState("ready");
    if (!(error instanceof EngineInputError)) console.error(error);
  }
}

main().catch((error: unknown) => {
  console.error(error);
  if (!$("backend").dataset.backend) $("backend-name").textContent = "none";
  setState("error");
  setStatus(`The page could not start: ${(error as Error).message}`, true);
});
