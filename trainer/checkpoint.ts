/**
 * Checkpoints: one safetensors file holding everything a run needs to continue exactly.
 *
 * Tensors
 *   model_A.<official name>, model_B.<official name>      parameters and batch-norm buffers
 *   optimizer_A.<name>.exp_avg | .exp_avg_sq | .step       Adam state (absent before the first step)
 *   bank_A.probs [N, proj_dim], bank_A.has [N] (uint8)     PO banks: softmax(img_logits) per caption
 *   split_A.prob, .prob_ctt [N], split_A.clean, .clean_ctt [N] (uint8)
 *                                                          the split of the co-training epoch in
 *                                                          progress (absent between epochs)
 * Metadata (`__metadata__`, strings)
 *   format "pc2-tfjs-checkpoint", version "2", state (JSON, `RunStateSchema`: the schedule cursor,
 *   the model RNG, the best validation, the configuration, the learning rates),
 *   sha256 of the whole file, header included (a flipped byte anywhere is refused, not trained on).
 *
 * The `model_A.`/`model_B.` prefixes are those of the official checkpoint's `model_A`/`model_B`
 * entries, so `bun run eval` reads this file like an official checkpoint converted to safetensors.
 * Files are written to a temporary name and renamed, so a crash never leaves half a checkpoint.
 */
import { createHash } from "node:crypto";
import { readFileSync } from "node:fs";
import { FormatError, type NdArray } from "../shared/formats/ndarray";
import { type TensorToWrite, readSafetensors, writeSafetensors } from "../shared/formats/safetensors";
import * as v from "valibot";
import { type SgrafConfig, SgrafConfigSchema } from "../shared/model/config";
import { Adam } from "../shared/model/optim";
import { ParamStore } from "../shared/model/params";
import type { Net } from "../shared/model/steps";
import { RunReferenceSchema } from "../shared/eval/diagnostics";
import { SplitEvaluationSchema } from "./evaluate";
import { writeFileAtomic } from "./files";

export const CHECKPOINT_FORMAT = "pc2-tfjs-checkpoint";
export const CHECKPOINT_VERSION = "2";

/** Per-caption pseudo-classification outputs stored by warmup and unlabeled steps (the official distri_bank). */
export interface PoBank {
  /** [N, proj_dim]. */
  probs: Float32Array;
  /** 1 where the caption has an entry (the official dict's keys). */
  has: Uint8Array;
  classes: number;
}

export function emptyBank(n: number, classes: number): PoBank {
  return { probs: new Float32Array(n * classes), has: new Uint8Array(n), classes };
}

const Int = v.pipe(v.number(), v.integer(), v.minValue(0));
const Word = v.pipe(v.number(), v.integer(), v.minValue(0), v.maxValue(2 ** 32 - 1));
const RandomStateSchema = v.object({ algorithm: v.literal("xoshiro128**"), s: v.tuple([Word, Word, Word, Word]) });

/**
 * Where the schedule stands: the stage, its epoch, the part of the epoch (warmup A, warmup B; or
 * split, train A, train B), the steps of that part already done, and the data-order RNG at the
 * part's start (a resumed part redraws its order from it and skips the steps done).
 */
/** One net's place inside a part that both nets run at once (--parallel on). */
export const LaneCursorSchema = v.object({ step: Int, dataRng: RandomStateSchema, modelRng: RandomStateSchema });
export type LaneCursor = v.InferOutput<typeof LaneCursorSchema>;

export const CursorSchema = v.object({
  stage: v.picklist(["warmup", "cotrain", "done"]),
  epoch: Int,
  part: Int,
  step: Int,
  dataRng: RandomStateSchema,
  /**
   * Inside a part that both nets run at once (--parallel on): each net's steps done, its own data
   * order (at the part's start) and its dropout RNG (now). Absent between parts and in one thread.
   */
  lanes: v.optional(v.object({ A: LaneCursorSchema, B: LaneCursorSchema })),
});
export type Cursor = v.InferOutput<typeof CursorSchema>;

/** What lasts between steps besides the tensors: exactly what a run needs to continue. */
export const RunStateSchema = v.object({
  cursor: CursorSchema,
  /** The model RNG (initialisation, dropout) after the last step. */
  modelRng: RandomStateSchema,
  bestRsum: v.number(),
  /** The epoch of the best validation: a co-training epoch, or "warmup" (--select all, --num_epochs 0). */
  bestEpoch: v.nullable(v.union([Int, v.literal("warmup")])),
  /** Test result at the best validation so far (as results.json). */
  bestTest: v.nullable(SplitEvaluationSchema),
  /** The resolved configuration of the run (config.json). */
  config: v.record(v.string(), v.unknown()),
  model: SgrafConfigSchema,
  /** Each net's learning rate at the step. */
  lr: v.object({ A: v.number(), B: v.number() }),
  /** Each net's learning-rate factor: 1, divided by 10 after each collapse that --recovery restored. */
  lrScale: v.optional(v.object({ A: v.number(), B: v.number() }), { A: 1, B: 1 }),
  /** Each net's similarity std and own rsum on the validation split after warmup: what a collapse is measured against. */
  reference: v.optional(v.nullable(RunReferenceSchema), null),
  /** The checkpoint of the last good state (the start of the co-training epoch in progress), for --recovery. */
  restorePoint: v.optional(v.nullable(v.string()), null),
});
export type RunState = v.InferOutput<typeof RunStateSchema>;

/** One net's split of the training captions (the official prob / pred / prob_ctt / pred_ctt). */
export interface NetSplit {
  prob: Float32Array;
  clean: Uint8Array;
  probCtt: Float32Array;
  cleanCtt: Uint8Array;
}

export interface Checkpoint {
  /** The state; `lr` is taken from the nets' optimizers when the checkpoint is written. */
  state: Omit<RunState, "lr">;
  nets: { A: Net; B: Net };
  banks: { A: PoBank; B: PoBank };
  /** The split of the co-training epoch in progress, needed to resume inside train A / train B. */
  split: { A: NetSplit; B: NetSplit } | null;
}

const SPLIT_TENSORS = [
  ["prob", "prob", "float32"],
  ["clean", "clean", "uint8"],
  ["probCtt", "prob_ctt", "float32"],
  ["cleanCtt", "clean_ctt", "uint8"],
] as const;

/** Serialises a checkpoint to bytes (exported for tests). */
export async function encodeCheckpoint(c: Checkpoint): Promise<Uint8Array> {
  const tensors: Array<[string, TensorToWrite]> = [];
  for (const k of ["A", "B"] as const) {
    for (const [name, a] of await c.nets[k].params.toArrays()) tensors.push([`model_${k}.${name}`, a]);
    for (const [name, a] of await c.nets[k].optimizer.toArrays()) tensors.push([`optimizer_${k}.${name}`, { dtype: "float32", shape: a.shape, data: a.data }]);
    const bank = c.banks[k];
    tensors.push([`bank_${k}.probs`, { dtype: "float32", shape: [bank.has.length, bank.classes], data: bank.probs }]);
    tensors.push([`bank_${k}.has`, { dtype: "uint8", shape: [bank.has.length], data: bank.has }]);
    if (c.split) for (const [field, name, dtype] of SPLIT_TENSORS) tensors.push([`split_${k}.${name}`, { dtype, shape: [c.split[k][field].length], data: c.split[k][field] }]);
  }
  const stored: RunState = { ...c.state, lr: { A: c.nets.A.optimizer.lr, B: c.nets.B.optimizer.lr } };
  const state = JSON.stringify(stored);
  // The digest covers the whole file (header: names, dtypes, shapes, offsets, the state; and the
  // data) as written with a placeholder in its own place; the digest then replaces the placeholder.
  const bytes = writeSafetensors(tensors, { format: CHECKPOINT_FORMAT, version: CHECKPOINT_VERSION, state, sha256: DIGEST_PLACEHOLDER });
  const at = digestOffset(bytes, DIGEST_PLACEHOLDER);
  bytes.set(new TextEncoder().encode(createHash("sha256").update(bytes).digest("hex")), at);
  return bytes;
}

const DIGEST_PLACEHOLDER = "0".repeat(64);

function lastIndexOf(hay: Uint8Array, needle: Uint8Array): number {
  outer: for (let i = hay.length - needle.length; i >= 0; i--) {
    for (let j = 0; j < needle.length; j++) if (hay[i + j] !== needle[j]) continue outer;
    return i;
  }
  return -1;
}

/** Offset in the file of the 64 hex digits of the header's `"sha256":"…"` entry (the last one). */
function digestOffset(file: Uint8Array, digest: string): number {
  const dv = new DataView(file.buffer, file.byteOffset, 8);
  const header = file.subarray(8, 8 + dv.getUint32(0, true) + dv.getUint32(4, true) * 2 ** 32);
  const at = lastIndexOf(header, new TextEncoder().encode(`"sha256":"${digest}"`));
  return at < 0 ? -1 : 8 + at + '"sha256":"'.length;
}

/** Whether the file's digest is the SHA-256 of the file with the digest replaced by the placeholder. */
function digestHolds(file: Uint8Array, digest: string): boolean {
  if (!/^[0-9a-f]{64}$/.test(digest)) return false;
  const at = digestOffset(file, digest);
  if (at < 0) return false;
  const copy = Uint8Array.from(file);
  copy.set(new TextEncoder().encode(DIGEST_PLACEHOLDER), at);
  return createHash("sha256").update(copy).digest("hex") === digest;
}

/** Writes atomically: a temporary file in the same folder, flushed, then renamed over `path`. */
export async function saveCheckpoint(path: string, c: Checkpoint): Promise<void> {
  writeFileAtomic(path, await encodeCheckpoint(c));
}

/** Reads and verifies a checkpoint file; it is refused with the reason when anything is off. */
export function readCheckpointFile(path: string): { state: RunState; arrays: Map<string, NdArray> } {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(path));
  } catch (e) {
    throw new FormatError(path, `cannot read the checkpoint (${(e as Error).message})`);
  }
  const { tensors, metadata } = readSafetensors(bytes, path);
  if (metadata.format !== CHECKPOINT_FORMAT) throw new FormatError(path, `not a ${CHECKPOINT_FORMAT} file (format ${JSON.stringify(metadata.format)}); official-name safetensors are for bun run eval/export, not --model_path`);
  if (metadata.version !== CHECKPOINT_VERSION) throw new FormatError(path, `checkpoint version ${metadata.version}, this trainer reads ${CHECKPOINT_VERSION}`);
  if (!digestHolds(bytes, metadata.sha256 ?? "")) throw new FormatError(path, "checksum mismatch: the header (tensor names, shapes, state) or the tensor data is corrupted");
  let json: unknown;
  try {
    json = JSON.parse(metadata.state);
  } catch {
    throw new FormatError(path, "state metadata is not valid JSON");
  }
  const parsed = v.safeParse(RunStateSchema, json);
  if (!parsed.success) throw new FormatError(path, `state metadata: ${v.getDotPath(parsed.issues[0]) ?? "(state)"}: ${parsed.issues[0].message}`);
  return { state: parsed.output, arrays: tensors };
}

function splitOf(arrays: Map<string, NdArray>, k: "A" | "B", n: number, path: string): NetSplit {
  const out = {} as Record<(typeof SPLIT_TENSORS)[number][0], Float32Array | Uint8Array>;
  for (const [field, name, dtype] of SPLIT_TENSORS) {
    const a = arrays.get(`split_${k}.${name}`);
    if (!a || a.dtype !== dtype || a.shape.length !== 1 || a.shape[0] !== n) throw new FormatError(path, `split_${k}.${name}: missing or not ${dtype} [${n}]`);
    out[field] = dtype === "float32" ? Float32Array.from(a.data as Float32Array) : Uint8Array.from(a.data as Uint8Array);
  }
  return out as unknown as NetSplit;
}

/** Rebuilds the nets, optimizers, banks and split of a checkpoint for a model configuration. */
export function restoreCheckpoint(path: string, model: SgrafConfig, options: { optimizers: boolean; learningRate: number }): Checkpoint & { state: RunState } {
  const { state, arrays } = readCheckpointFile(path);
  const mismatch = (Object.keys(model) as (keyof SgrafConfig)[]).filter((k) => state.model[k] !== model[k]);
  if (mismatch.length) {
    throw new FormatError(path, `model configuration differs from this run's: ${mismatch.map((k) => `${k} ${JSON.stringify(state.model[k])} in the checkpoint vs ${JSON.stringify(model[k])}`).join(", ")}`);
  }
  const nets = {} as { A: Net; B: Net };
  const banks = {} as { A: PoBank; B: PoBank };
  const hasSplit = arrays.has("split_A.prob");
  const split = hasSplit ? ({} as { A: NetSplit; B: NetSplit }) : null;
  for (const k of ["A", "B"] as const) {
    const params = ParamStore.fromArrays(model, arrays, path, `model_${k}.`);
    const optimizer = new Adam({ lr: options.learningRate });
    if (options.optimizers) {
      const prefix = `optimizer_${k}.`;
      const opt = new Map<string, NdArray>();
      for (const [name, a] of arrays) if (name.startsWith(prefix)) opt.set(name.slice(prefix.length), a);
      optimizer.loadArrays(opt);
    }
    nets[k] = { params, optimizer };
    const probs = arrays.get(`bank_${k}.probs`);
    const has = arrays.get(`bank_${k}.has`);
    if (!probs || !has) throw new FormatError(path, `missing PO bank ${k}`);
    banks[k] = { probs: Float32Array.from(probs.data as Float32Array), has: Uint8Array.from(has.data as Uint8Array), classes: probs.shape[1] };
    if (split) split[k] = splitOf(arrays, k, has.shape[0], path);
  }
  return { state, nets, banks, split };
}
