/** Loads a reference case (case.json + tensors.safetensors) of the eval fixtures. */
import { resolve } from "node:path";
import type { NdArray } from "../../../shared/formats/ndarray";
import { readSafetensors } from "../../../shared/formats/safetensors";
import { REFERENCE_DIR } from "../../support";

/** Another fixture set of the same structure can be substituted through PC2_REFERENCE_DIR. */
export const FIXTURE_ROOT = process.env.PC2_REFERENCE_DIR ?? resolve(REFERENCE_DIR, "sgraf-small");

export interface ReferenceCase {
  description: string;
  scalars: Record<string, unknown>;
  tensors: Map<string, NdArray>;
}

export async function loadCase(name: string): Promise<ReferenceCase> {
  const dir = resolve(FIXTURE_ROOT, name);
  const json = (await Bun.file(resolve(dir, "case.json")).json()) as { description: string; scalars: Record<string, unknown> };
  const file = resolve(dir, "tensors.safetensors");
  const { tensors } = readSafetensors(new Uint8Array(await Bun.file(file).arrayBuffer()), file);
  return { description: json.description, scalars: json.scalars, tensors };
}

export function tensor(c: ReferenceCase, name: string): NdArray {
  const t = c.tensors.get(name);
  if (!t) throw new Error(`fixture ${FIXTURE_ROOT}: tensor '${name}' missing (have: ${[...c.tensors.keys()].join(", ")})`);
  return t;
}

/** Every value as a JavaScript number (int64 fixtures come as BigInt64Array). */
export function numbers(t: NdArray): number[] {
  return Array.from(t.data as ArrayLike<number | bigint>, (v) => Number(v));
}
