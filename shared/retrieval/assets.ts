/**
 * Where the edge app's bytes come from (model weights, vocabulary, gallery features). The app and
 * the engine loader see only `AssetSource`; each runtime adapter picks an implementation: a
 * directory (edge/adapters/bun.ts), a base URL, a Workers static-assets binding or an R2 bucket.
 */

export interface AssetSource {
  /** The file's bytes, or null when there is no such file; throws on any other failure. */
  get(path: string): Promise<Uint8Array | null>;
}

/**
 * Checks a relative asset path ("model/weights.safetensors") and returns it without a leading
 * "./". Rejects what could leave the asset root: absolute paths, "..", backslashes, NUL, empty
 * segments.
 */
export function assetPath(path: string): string {
  const trimmed = path.startsWith("./") ? path.slice(2) : path;
  const segments = trimmed.split("/");
  const bad =
    trimmed.length === 0 ||
    trimmed.includes("\\") ||
    trimmed.includes("\0") ||
    segments.some((s) => s === "" || s === "." || s === "..");
  if (bad) throw new Error(`asset path ${JSON.stringify(path)} is not a plain relative path (a/b/c.ext)`);
  return trimmed;
}

/** Files held in memory, keyed by path; for tests and for engines built from uploaded bytes. */
export function memoryAssets(files: Record<string, Uint8Array>): AssetSource {
  const map = new Map(Object.entries(files));
  return { get: async (path) => map.get(assetPath(path)) ?? null };
}

/** Files under a base URL (must end with "/"), read with `fetch`; 404 is "no such file". */
export function fetchAssets(baseUrl: string | URL, fetcher: typeof fetch = fetch): AssetSource {
  const base = new URL(baseUrl);
  if (!base.pathname.endsWith("/")) throw new Error(`fetchAssets: base URL ${base} must end with "/"`);
  return {
    async get(path) {
      const url = new URL(encodePath(assetPath(path)), base);
      return bytesOf(await fetcher(url), url.href);
    },
  };
}

/** The part of a Workers `Fetcher` binding (`env.ASSETS`) used here. */
export interface AssetsBinding {
  fetch(input: Request | string): Promise<Response>;
}

/**
 * Files of a Workers static-assets binding. The binding ignores the host, so any origin works;
 * note Workers serve assets of at most 25 MiB each.
 */
export function workersAssets(binding: AssetsBinding, prefix = ""): AssetSource {
  return {
    async get(path) {
      const url = `https://assets.invalid/${encodePath(prefix + assetPath(path))}`;
      return bytesOf(await binding.fetch(new Request(url)), url);
    },
  };
}

/** The part of an R2 bucket binding (`env.BUCKET`) used here. */
export interface BucketBinding {
  get(key: string): Promise<{ arrayBuffer(): Promise<ArrayBuffer> } | null>;
}

/** Objects of an R2-style bucket, keys `prefix + path`. */
export function bucketAssets(bucket: BucketBinding, prefix = ""): AssetSource {
  return {
    async get(path) {
      const object = await bucket.get(prefix + assetPath(path));
      return object === null ? null : new Uint8Array(await object.arrayBuffer());
    },
  };
}

function encodePath(path: string): string {
  return path.split("/").map(encodeURIComponent).join("/");
}

async function bytesOf(response: Response, where: string): Promise<Uint8Array | null> {
  if (response.status === 404) {
    await response.body?.cancel();
    return null;
  }
  if (!response.ok) {
    await response.body?.cancel();
    throw new Error(`asset ${where}: HTTP ${response.status} ${response.statusText}`);
  }
  return new Uint8Array(await response.arrayBuffer());
}
