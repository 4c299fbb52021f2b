/**
 * Read-only files of the edge app: the exported model's (`GET /model/<file>`, which the browser
 * page loads the model from) and the browser page's (`GET /app`, `GET /app/<file>`). Both come
 * through an AssetSource, and only names on an allowlist reach it: model.json and the files it
 * lists, and the page's BROWSER_FILES. A name off the list is 404 before any AssetSource is
 * asked, so no path, encoded or not, gets past those files; the names that are on it still go
 * through `assetPath`. Runtime-free, like the app.
 */
import { HTTPException } from "hono/http-exception";
import * as v from "valibot";
import { MODEL_JSON, ModelJsonSchema, sha256Hex } from "../shared/model/package.ts";
import { assetPath, type AssetSource } from "../shared/retrieval/assets.ts";
import { BROWSER_FILE_NAMES } from "./browser/files.ts";

const CONTENT_TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".json": "application/json",
  ".wasm": "application/wasm",
  ".bin": "application/octet-stream",
};

export function contentType(name: string): string {
  const dot = name.lastIndexOf(".");
  return (dot >= 0 && CONTENT_TYPES[name.slice(dot)]) || "application/octet-stream";
}

/**
 * The page's script runs WebAssembly (the wasm backend) and nothing from other origins; tfjs
 * builds WebGPU shaders from strings, which no script-src governs.
 */
const PAGE_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self' 'wasm-unsafe-eval'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "object-src 'none'",
  "base-uri 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** One served file: bytes and the validator a browser revalidates with. */
interface Served {
  bytes: Uint8Array;
  etag: string;
}

function notFound(what: string): HTTPException {
  return new HTTPException(404, { message: what });
}

/**
 * The answer for `file`: 304 when the browser's copy is current, else the bytes. `no-cache`
 * because a restarted server may hold another model under the same names; the ETag makes the
 * revalidation cheap.
 */
function respond(request: Request, name: string, served: Served, extra: Record<string, string> = {}): Response {
  const headers = { ETag: served.etag, "Cache-Control": "no-cache", "X-Content-Type-Options": "nosniff", ...extra };
  if (matches(request.headers.get("If-None-Match"), served.etag)) return new Response(null, { status: 304, headers });
  return new Response(served.bytes as Uint8Array<ArrayBuffer>, { headers: { "Content-Type": contentType(name), ...headers } });
}

function matches(ifNoneMatch: string | null, etag: string): boolean {
  if (ifNoneMatch === null) return false;
  return ifNoneMatch.trim() === "*" || ifNoneMatch.split(",").some((t) => t.trim().replace(/^W\//, "") === etag);
}

const quoted = (hash: string) => `"${hash}"`;

/** What the model route needs of model.json: the file list, from the package's one schema. */
const ModelFilesSchema = v.object({ files: ModelJsonSchema.entries.files });

/**
 * `GET /model/<file>`: model.json and the files it lists (ETag: their SHA-256 from model.json).
 * The list is read once, when first asked for; a failed read is forgotten so that a later request
 * tries again.
 */
export function modelFiles(assets: AssetSource) {
  let listing: Promise<{ json: Served; files: ReadonlyMap<string, string> }> | null = null;
  const list = () => {
    listing ??= readListing(assets).catch((error: unknown) => {
      listing = null;
      throw error;
    });
    return listing;
  };
  return async (request: Request, name: string): Promise<Response> => {
    const { json, files } = await list();
    if (name === MODEL_JSON) return respond(request, name, json);
    const sha = files.get(name);
    if (sha === undefined) throw notFound(`the model has no file ${JSON.stringify(name.slice(0, 100))}`);
    const etag = quoted(sha);
    if (matches(request.headers.get("If-None-Match"), etag)) return respond(request, name, { bytes: new Uint8Array(), etag });
    const bytes = await assets.get(name);
    if (bytes === null) throw new HTTPException(503, { message: `the model lists ${name} but it is missing; see the server log` });
    return respond(request, name, { bytes, etag });
  };
}

async function readListing(assets: AssetSource) {
  const bytes = await assets.get(MODEL_JSON);
  if (bytes === null) throw notFound("this server has no model files");
  let raw: unknown;
  try {
    raw = JSON.parse(new TextDecoder().decode(bytes));
  } catch {
    raw = null;
  }
  const parsed = v.safeParse(ModelFilesSchema, raw);
  if (!parsed.success) throw new HTTPException(503, { message: `${MODEL_JSON} of this server's model is not valid` });
  const files = new Map<string, string>();
  for (const [name, info] of Object.entries(parsed.output.files)) {
    // A listed name that is not a plain relative path is never served (nor read).
    if (name !== MODEL_JSON && isPlainPath(name)) files.set(name, info.sha256);
  }
  return { json: { bytes, etag: quoted(await sha256Hex(bytes)) }, files };
}

function isPlainPath(name: string): boolean {
  try {
    return assetPath(name) === name;
  } catch {
    return false;
  }
}

/**
 * `GET /app` and `GET /app/<file>`: the browser page's files (edge/browser/build.ts makes them).
 * They are read per request (they are small, and a Worker reads them from its assets binding);
 * the ETag is their SHA-256.
 */
export function browserFiles(assets: AssetSource) {
  return async (request: Request, name: string): Promise<Response> => {
    if (!BROWSER_FILE_NAMES.includes(name)) throw notFound(`the browser page has no file ${JSON.stringify(name.slice(0, 100))}`);
    const bytes = await assets.get(name);
    if (bytes === null) throw notFound(`the browser page is not built into this server (${name} is missing)`);
    const extra: Record<string, string> = name.endsWith(".html") ? { "Content-Security-Policy": PAGE_SECURITY_POLICY } : {};
    return respond(request, name, { bytes, etag: quoted(await sha256Hex(bytes)) }, extra);
  };
}
