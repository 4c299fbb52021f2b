/**
 * Evaluation (and, with --parallel on, the nets' training parts) over all cores. tfjs-backend-wasm has no threads under Bun, so the all-pairs
 * similarity of validation and test, and the split pass's per-sample losses, run in a pool of
 * Bun Workers (trainer/eval-worker.ts), each with its own backend. A task is one net's share of
 * the work: its whole matrix when there are as many nets as workers, else a range of image rows.
 * Workers compute with the same functions as the main thread, so the numbers are identical.
 *
 * A split is sent to a worker once (captions, the features' file, the pairing); nets travel with
 * each task as arrays. Splits held only in memory (tests' stores) are not sent: their evaluation
 * stays in the calling thread.
 */
import { availableParallelism } from "node:os";
import type { SgrafConfig } from "../shared/model/config";
import type { NdArray } from "../shared/formats/ndarray";
import type { FeatureStore } from "./data/features";
import type { RandomState } from "../shared/random";
import type { NetSplit } from "./checkpoint";
import type { StepConfig } from "./net-steps";
import { TrainingFault } from "./fault";

/** What a worker needs to rebuild a split: everything but the open feature file. */
export interface SplitSpec {
  captions: Int32Array[];
  imagesFile: string;
  regions: number;
  imgDim: number;
  length: number;
  imDiv: 1 | 5;
  perCaptions: 1 | 5;
  /** The training pairing (split pass only). */
  t2i?: Int32Array;
}
export type PoolSplit = Omit<SplitSpec, "imagesFile" | "regions" | "imgDim"> & { images: FeatureStore };

/** Image rows [i0, i1) against captions [c0, c1). */
export interface Block {
  images: [number, number];
  captions: [number, number];
}

export type NetArrays = Map<string, NdArray>;

/** One net's part on a worker (--parallel on): the net, its optimizer and bank travel both ways. */
export interface LaneRequest {
  part: "warmup" | "cotrain";
  model: SgrafConfig;
  net: NetArrays;
  optimizer: NetArrays;
  lr: number;
  bank: { probs: Float32Array; has: Uint8Array; classes: number };
  /** The data-order RNG at the part's start, the model RNG now, and the steps already done. */
  dataRng: RandomState;
  modelRng: RandomState;
  step: number;
  config: StepConfig;
  /** The peer's split (cotrain). */
  split?: NetSplit;
  epoch: number;
  /** How errors name the place ("warmup A, epoch 0"). */
  where: string;
}
export interface LaneResult {
  net: NetArrays;
  optimizer: NetArrays;
  bank: { probs: Float32Array; has: Uint8Array; classes: number };
  modelRng: RandomState;
  step: number;
  stopped: boolean;
}
/** What a lane reports after each step. */
export interface LaneEvent {
  i: number;
  total: number;
  values: Record<string, number>;
}

export type PoolRequest =
  | { kind: "init"; backend: string; stop: SharedArrayBuffer }
  | ({ kind: "lane"; key: string } & LaneRequest)
  | { kind: "split"; key: string; spec: SplitSpec }
  | { kind: "sims"; key: string; net: NetArrays; model: SgrafConfig; blocks: Block[]; batchSize: number; budgetBytes?: number }
  | { kind: "losses"; key: string; net: NetArrays; model: SgrafConfig; bank: { probs: Float32Array; has: Uint8Array; classes: number }; order: Int32Array; batchSize: number; margin: number };

export type PoolReply = { id: number; ok: true; result: unknown } | { id: number; ok: false; error: string; name: string } | { id: number; event: LaneEvent };

/** Something a split can be sent from: a dataset split, or the training pairs. */
export interface PoolSource {
  captions: readonly Int32Array[];
  images: FeatureStore;
  length?: number;
  imDiv?: 1 | 5;
  perCaptions?: 1 | 5;
  t2i?: ArrayLike<number>;
}

/** Workers for a machine: one per core (`requested` 0), or as many as asked; 1 means no pool. */
export function poolSize(requested: number, cores = availableParallelism()): number {
  return requested > 0 ? requested : cores;
}

interface Slot {
  worker: Worker;
  busy: boolean;
  splits: Set<string>;
  pending: Map<number, { resolve: (v: unknown) => void; reject: (e: Error) => void; onEvent?: (e: LaneEvent) => void }>;
}

export class EvalPool {
  private nextId = 1;
  private keys = new WeakMap<object, string>();
  private waiting: Array<(slot: Slot) => void> = [];
  private closed = false;

  /** Set to 1 to ask running lanes to stop after their current step. */
  private readonly stopFlag = new Int32Array(new SharedArrayBuffer(4));

  private constructor(private readonly slots: Slot[]) {}

  /** Starts `size` workers on `backend` (the main thread's, so that the numbers agree). */
  static async start(size: number, backend: string): Promise<EvalPool> {
    const slots: Slot[] = [];
    for (let i = 0; i < size; i++) {
      const worker = new Worker(new URL("./eval-worker.ts", import.meta.url).href);
      const slot: Slot = { worker, busy: false, splits: new Set(), pending: new Map() };
      worker.onmessage = (event: MessageEvent<PoolReply>) => {
        const r = event.data;
        const p = slot.pending.get(r.id);
        if (!p) return;
        if ("event" in r) {
          p.onEvent?.(r.event);
          return;
        }
        slot.pending.delete(r.id);
        if (r.ok) p.resolve(r.result);
        else p.reject(r.name === "TrainingFault" ? new TrainingFault(r.error) : new Error(`evaluation worker: ${r.name}: ${r.error}`));
      };
      worker.onerror = (event) => {
        for (const p of slot.pending.values()) p.reject(new Error(`evaluation worker failed: ${event.message}`));
        slot.pending.clear();
      };
      slots.push(slot);
    }
    const pool = new EvalPool(slots);
    try {
      await Promise.all(slots.map((s) => pool.call(s, { kind: "init", backend, stop: pool.stopFlag.buffer as SharedArrayBuffer })));
    } catch (e) {
      pool.terminate();
      throw e;
    }
    return pool;
  }

  get size(): number {
    return this.slots.length;
  }

  /** Whether a split can be evaluated here (its features come from a file the workers can open). */
  static canServe(source: PoolSource): boolean {
    return !source.images.file.startsWith("<");
  }

  /** Similarity blocks of one net on a split, computed by one worker. */
  async sims(source: PoolSource, net: NetArrays, model: SgrafConfig, blocks: Block[], o: { batchSize: number; budgetBytes?: number }): Promise<Float32Array[]> {
    return (await this.task(source, (key) => ({ kind: "sims", key, net, model, blocks, batchSize: o.batchSize, budgetBytes: o.budgetBytes }))) as Float32Array[];
  }

  /** Per-sample eval losses and PO consistency of one net over batches in `order`. */
  async losses(source: PoolSource, net: NetArrays, model: SgrafConfig, bank: { probs: Float32Array; has: Uint8Array; classes: number }, order: Int32Array, o: { batchSize: number; margin: number }): Promise<{ loss: Float64Array; ctt: Float64Array }> {
    return (await this.task(source, (key) => ({ kind: "losses", key, net, model, bank, order, batchSize: o.batchSize, margin: o.margin }))) as { loss: Float64Array; ctt: Float64Array };
  }

  /** One net's part on a worker; `onEvent` sees each step as it is done. */
  async lane(pairs: PoolSource, request: LaneRequest, onEvent: (e: LaneEvent) => void): Promise<LaneResult> {
    return (await this.task(pairs, (key) => ({ kind: "lane", key, ...request }), onEvent)) as LaneResult;
  }

  /** Asks the running lanes to stop after their current step (until clearStop). */
  requestStop(): void {
    Atomics.store(this.stopFlag, 0, 1);
  }

  clearStop(): void {
    Atomics.store(this.stopFlag, 0, 0);
  }

  terminate(): void {
    this.closed = true;
    for (const s of this.slots) {
      s.worker.terminate();
      for (const p of s.pending.values()) p.reject(new Error("evaluation pool terminated"));
      s.pending.clear();
    }
  }

  private async task(source: PoolSource, request: (key: string) => PoolRequest, onEvent?: (e: LaneEvent) => void): Promise<unknown> {
    const slot = await this.acquire();
    try {
      const key = this.keyOf(source);
      if (!slot.splits.has(key)) {
        await this.call(slot, { kind: "split", key, spec: specOf(source) });
        slot.splits.add(key);
      }
      return await this.call(slot, request(key), onEvent);
    } finally {
      this.release(slot);
    }
  }

  private keyOf(source: PoolSource): string {
    let key = this.keys.get(source);
    if (!key) {
      key = `split-${this.nextId++}`;
      this.keys.set(source, key);
    }
    return key;
  }

  private call(slot: Slot, request: PoolRequest, onEvent?: (e: LaneEvent) => void): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error("evaluation pool terminated"));
    const id = this.nextId++;
    return new Promise((resolve, reject) => {
      slot.pending.set(id, { resolve, reject, onEvent });
      slot.worker.postMessage({ ...request, id });
    });
  }

  private acquire(): Promise<Slot> {
    const free = this.slots.find((s) => !s.busy);
    if (free) {
      free.busy = true;
      return Promise.resolve(free);
    }
    return new Promise((resolve) => this.waiting.push(resolve));
  }

  private release(slot: Slot): void {
    const next = this.waiting.shift();
    if (next) next(slot);
    else slot.busy = false;
  }
}

function specOf(source: PoolSource): SplitSpec {
  const length = source.length ?? source.captions.length;
  return {
    captions: source.captions.slice(0, length),
    imagesFile: source.images.file,
    regions: source.images.regions,
    imgDim: source.images.dim,
    length,
    imDiv: source.imDiv ?? 1,
    perCaptions: source.perCaptions ?? 1,
    t2i: source.t2i ? Int32Array.from(source.t2i) : undefined,
  };
}

/** Row ranges [i0, i1) that cut `n` images into `parts` nearly equal pieces. */
export function rowRanges(n: number, parts: number): Array<[number, number]> {
  const k = Math.max(1, Math.min(parts, n));
  return Array.from({ length: k }, (_, i) => [Math.floor((i * n) / k), Math.floor(((i + 1) * n) / k)] as [number, number]);
}
