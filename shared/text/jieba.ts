/**
 * Jieba 0.42.1's `jieba.lcut(text)` (accurate mode, HMM on, default dictionary): the segmenter
 * behind NoW's `*_caps_jieba.txt`. The segmentation is jieba-rs (npm `jieba-wasm`, the same
 * dictionary and HMM model compiled to WebAssembly), which runs alike on Bun, in workerd and in
 * the browser; the ~4 MB module holds the zstd-compressed dictionary, which it unpacks into ~60 MB
 * of WebAssembly memory on the first cut.
 *
 * Where it differs from Python: jieba-rs's HMM fallback splits the non-Chinese part of an
 * out-of-dictionary run with `([a-zA-Z0-9]+(?:.\d+)?%?)`, whose `.` is unescaped, where Python's
 * `finalseg.re_skip` has `\.`; "气温18-24℃" gives jieba-rs "18-24" and Python "18", "-", "24".
 * `fixSkipSplits` re-splits such runs with Python's pattern.
 *
 * Runtime-free: the module comes from the caller (a Workers CompiledWasm import, a URL the page
 * fetches on the first text query), or, without one, from jieba-wasm's own loader (a fetch of the
 * file beside its glue: Bun, Node).
 */
import init, { cut, initSync } from "jieba-wasm/web";

/** What `/v1/model` and the package report for this segmenter. */
export const JIEBA_VERSION = "jieba-rs via jieba-wasm 2.4.0 (jieba 0.42.1 default dictionary, HMM on)";

export interface JiebaSegmenter {
  /** `jieba.lcut(text)`. */
  cut(text: string): string[];
}

/** A precompiled module, its bytes, or its URL; none: jieba-wasm fetches its file (Bun, Node). */
export interface JiebaSource {
  module?: WebAssembly.Module;
  bytes?: Uint8Array;
  /** Fetched (and compiled as it streams) when the segmenter is first loaded: the browser page. */
  url?: string | URL;
  /** Set where the runtime has no module to give (a Worker built without it): why. */
  unavailable?: string;
}

/** Jieba was asked for where the runtime has none: a request it cannot serve, not a bug. */
export class JiebaUnavailableError extends Error {
  override name = "JiebaUnavailableError";
}

let ready: Promise<JiebaSegmenter> | null = null;
let memory: WebAssembly.Memory | null = null;
let configured: JiebaSource = {};

/**
 * Where `loadJieba()` takes the module from when it is given none: a runtime's entry sets it at
 * start (a Worker, its imported module) and nothing is instantiated until a text needs it.
 */
export function configureJieba(source: JiebaSource): void {
  configured = source;
}

/**
 * The process's segmenter, instantiated once (jieba-wasm keeps one instance per JS realm). The
 * dictionary is unpacked on the first cut, not here.
 */
export function loadJieba(source: JiebaSource = configured): Promise<JiebaSegmenter> {
  // Before the cache: a source without Jieba has none, whatever another caller loaded.
  if (source.unavailable) return Promise.reject(new JiebaUnavailableError(`Jieba is not available: ${source.unavailable}`));
  ready ??= (async () => {
    if (source.module) memory = initSync({ module: source.module }).memory;
    else if (source.bytes) memory = initSync({ module: new WebAssembly.Module(source.bytes as Uint8Array<ArrayBuffer>) }).memory;
    else memory = (await init(source.url === undefined ? undefined : { module_or_path: source.url })).memory;
    return { cut: (text: string) => fixSkipSplits(cut(text, true)) };
  })().catch((error: unknown) => {
    ready = null;
    throw error;
  });
  return ready;
}

/** Bytes of WebAssembly memory the segmenter holds (0 before it is loaded): ~60 MB once it has cut. */
export function jiebaMemoryBytes(): number {
  return memory?.buffer.byteLength ?? 0;
}

/** Characters of jieba's `re_han_default` blocks outside the Han range. */
const ASCII_BLOCK = /^[a-zA-Z0-9+#&._%-]+$/;
/** A token that only jieba-rs's unescaped `.` makes: alphanumerics, a non-dot separator, digits. */
const RUST_ONLY = /^[a-zA-Z0-9]+[+#&_%-][0-9]+%?$/;
/** Python's `finalseg.re_skip`. */
const PY_SKIP = /([a-zA-Z0-9]+(?:\.[0-9]+)?%?)/;
/** The ASCII-only words of the default dictionary: the route yields them whole, not the HMM. */
const ASCII_WORDS = new Set(["AT&T", "c#", "C#", "c++", "C++"]);

const inRun = (t: string) => ASCII_BLOCK.test(t) && !ASCII_WORDS.has(t);

/**
 * Re-splits, with Python's `re_skip`, each run of ASCII tokens that jieba-rs's HMM fallback split
 * differently. Such a run is the non-Chinese part of one out-of-dictionary stretch: the route's
 * other tokens are dictionary words (Chinese, or the five ASCII words) or single characters
 * outside the ASCII block class, so adjacent ASCII tokens all come from the same stretch.
 */
export function fixSkipSplits(tokens: string[]): string[] {
  if (!tokens.some((t) => RUST_ONLY.test(t))) return tokens;
  const out: string[] = [];
  for (let i = 0; i < tokens.length; ) {
    if (!RUST_ONLY.test(tokens[i])) {
      out.push(tokens[i++]);
      continue;
    }
    let a = out.length;
    while (a > 0 && inRun(out[a - 1])) a--;
    let b = i;
    while (b < tokens.length && inRun(tokens[b])) b++;
    const run = out.splice(a).join("") + tokens.slice(i, b).join("");
    out.push(...run.split(PY_SKIP).filter((s) => s !== ""));
    i = b;
  }
  return out;
}
