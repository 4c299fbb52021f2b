/**
 * The browser page's files: what edge/browser/build.ts makes, what the app serves under /app/ (and
 * nothing else there), and what the page's script fetches. Runtime-free.
 */
import { WASM_BINARIES } from "../wasm-binaries.ts";

export const BROWSER_FILES = {
  /** The page, served at `/app`. */
  page: "index.html",
  /** edge/browser/main.ts bundled for the browser, with tfjs and the engine. */
  script: "main.js",
  /** tfjs-backend-wasm's binaries (the page picks one by the SIMD probe) and native/bmm.wasm. */
  wasmPlain: WASM_BINARIES.plain,
  wasmSimd: WASM_BINARIES.simd,
  bmm: "bmm.wasm",
  /**
   * jieba-rs (shared/text/jieba.ts), fetched on the first text query of a NoW jieba model only: 4 MB
   * that a model of another tokenizer never downloads.
   */
  jieba: "jieba_rs_wasm_bg.wasm",
} as const;

export const BROWSER_FILE_NAMES: readonly string[] = Object.values(BROWSER_FILES);

/** Where the Workers build keeps the page in its static assets (`bun run build:browser`). */
export const BROWSER_ASSETS_PREFIX = "app/";
