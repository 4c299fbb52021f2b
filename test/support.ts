/** Paths to the material beside the repository (`../shared`), overridable for CI layouts. */
import { resolve } from "node:path";

export const REPO_ROOT = resolve(import.meta.dir, "..");
export const SHARED_DIR = process.env.PC2_SHARED_DIR ?? resolve(REPO_ROOT, "../shared");
export const REFERENCE_DIR = resolve(SHARED_DIR, "reference");

/** `promise`, or an error naming `what()` after `ms` milliseconds (for child processes that may hang). */
export async function withTimeout<T>(promise: Promise<T>, ms: number, what: () => string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms: ${what()}`)), ms);
  });
  try {
    return await Promise.race([promise, timeout]);
  } finally {
    clearTimeout(timer);
  }
}
