/** Paths to the material beside the repository (`../shared`), overridable for CI layouts. */
import { resolve } from "node:path";

export const REPO_ROOT = resolve(import.meta.dir, "..");
export const SHARED_DIR = process.env.PC2_SHARED_DIR ?? resolve(REPO_ROOT, "../shared");
export const REFERENCE_DIR = resolve(SHARED_DIR, "reference");
