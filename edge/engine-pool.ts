/**
 * A RetrievalEngine made of a few Bun Workers (edge/engine-worker.ts), each with its own tfjs and
 * model: `bun run edge` serves through it so that the server's thread only parses, validates and
 * answers, and /health keeps answering while an evaluation runs. Cloudflare Workers keep the
 * in-isolate engine (edge/worker.ts): an isolate has one thread and no Worker.
 *
 * Calls wait in a FIFO for an idle worker; the app bounds how many are in hand (edge/admission.ts).
 * Evaluations and scores (the verbs whose work can reach the app's work limit) take at most all
 * workers but one, so that a search never waits behind a queue of them for more than one call.
 * A call whose signal fires while it waits leaves the queue; one that is running is stopped by
 * terminating its worker, and a fresh worker loads the model in its place.
 */
import { EngineInputError, EngineStorageError, type EvalOptions, type EvalResult, type ImageQuery, type ModelInfo, type RetrievalEngine, type SearchOptions, type SearchResult, type TextQuery } from "../shared/retrieval/engine.ts";
import type { ShardOptions } from "../shared/model/inference.ts";
import type { WeightHolding } from "../shared/model/package.ts";
import type { EngineShape, EngineVerb, FromWorker, ToWorker } from "./engine-worker.ts";

export interface EnginePoolOptions {
  /** Exported model directory, read by every worker. */
  modelDir: string;
  /** The nets to serve (default: all of the package's). */
  nets?: string[];
  /** How the nets' encoder matrices are held (DecodeOptions.weights; default float32). */
  weights?: WeightHolding;
  /** Each worker's cache of gallery region shards (region-store.ts REGION_CACHE_BYTES when absent). */
  regionCacheBytes?: number;
  /** Workers, each an engine computing one call at a time. */
  workers: number;
  /** Shard budget of each worker's similarity computations. */
  shard?: Partial<ShardOptions>;
}

/**
 * Each worker's shard budget unless told: a wasm heap never shrinks, so every worker keeps the
 * largest shard it ever computed; 32 MiB of intermediates costs an evaluation a few percent of
 * its speed against inference.ts's 256 MiB and keeps the server's memory near its idle size.
 */
export const POOL_SHARD_BYTES = 32 * 2 ** 20;

/** Verbs that may hold a worker for seconds (see the header). */
const HEAVY: ReadonlySet<EngineVerb> = new Set(["evaluate", "score"]);

interface Job {
  verb: EngineVerb;
  args: unknown[];
  signal?: AbortSignal;
  resolve(value: unknown): void;
  reject(error: unknown): void;
}

interface Slot {
  worker: Worker;
  job: Job | null;
  id: number;
}

export class EnginePool implements RetrievalEngine {
  readonly imgDim: number;
  readonly regions: number;
  readonly vocabSize: number;
  readonly maxTokens: number;
  /** The exported manifest's digest (edge/bun.ts prints it). */
  readonly digest: string;
  private readonly modelInfo: ModelInfo;
  private readonly idle: Slot[] = [];
  private readonly queue: Job[] = [];
  private readonly slots = new Set<Slot>();
  private nextId = 0;
  private closed = false;
  /** Workers that may run heavy verbs at once. */
  private readonly heavyLanes: number;

  private constructor(
    private readonly options: EnginePoolOptions,
    shape: EngineShape,
    slots: Slot[],
  ) {
    this.imgDim = shape.imgDim;
    this.regions = shape.regions;
    this.vocabSize = shape.vocabSize;
    this.maxTokens = shape.maxTokens;
    this.digest = shape.digest;
    this.modelInfo = shape.info;
    this.heavyLanes = Math.max(1, options.workers - 1);
    for (const slot of slots) this.adopt(slot);
  }

  /** Starts the workers and waits until every one has loaded the model; a bad model throws. */
  static async start(options: EnginePoolOptions): Promise<EnginePool> {
    if (!Number.isInteger(options.workers) || options.workers < 1) throw new RangeError(`EnginePool: workers must be a positive integer, not ${options.workers}`);
    const started = await Promise.allSettled(Array.from({ length: options.workers }, () => spawn(options)));
    const failed = started.find((s) => s.status === "rejected");
    if (failed) {
      for (const s of started) if (s.status === "fulfilled") s.value.slot.worker.terminate();
      throw (failed as PromiseRejectedResult).reason;
    }
    const ok = started as Array<PromiseFulfilledResult<{ slot: Slot; shape: EngineShape }>>;
    return new EnginePool(options, ok[0].value.shape, ok.map((s) => s.value.slot));
  }

  info(): ModelInfo {
    // A worker's memory at its load is not its memory now: left out.
    const { memory: _, ...info } = this.modelInfo;
    return info;
  }

  searchImages(q: TextQuery, k: number, options?: SearchOptions, signal?: AbortSignal): Promise<SearchResult> {
    return this.call("searchImages", [q, k, options], signal) as Promise<SearchResult>;
  }

  searchCaptions(q: ImageQuery, k: number, options?: SearchOptions, signal?: AbortSignal): Promise<SearchResult> {
    return this.call("searchCaptions", [q, k, options], signal) as Promise<SearchResult>;
  }

  score(pairs: Array<ImageQuery & TextQuery>, signal?: AbortSignal): Promise<number[]> {
    return this.call("score", [pairs], signal) as Promise<number[]>;
  }

  evaluate(options?: EvalOptions, signal?: AbortSignal): Promise<EvalResult> {
    return this.call("evaluate", [options], signal) as Promise<EvalResult>;
  }

  /** Calls waiting for a worker. */
  waiting(): number {
    return this.queue.length;
  }

  /** Terminates every worker; calls in hand reject. */
  close(): void {
    this.closed = true;
    for (const slot of this.slots) {
      slot.worker.terminate();
      slot.job?.reject(new Error("the engine pool was closed"));
    }
    for (const job of this.queue.splice(0)) job.reject(new Error("the engine pool was closed"));
    this.slots.clear();
    this.idle.length = 0;
  }

  private call(verb: EngineVerb, args: unknown[], signal?: AbortSignal): Promise<unknown> {
    if (this.closed) return Promise.reject(new Error("the engine pool was closed"));
    if (signal?.aborted) return Promise.reject(signal.reason);
    return new Promise((resolve, reject) => {
      const job: Job = { verb, args, signal, resolve, reject };
      signal?.addEventListener("abort", () => this.cancel(job), { once: true });
      this.queue.push(job);
      this.dispatch();
    });
  }

  private dispatch(): void {
    while (this.idle.length > 0) {
      const heavyBusy = [...this.slots].filter((s) => s.job !== null && HEAVY.has(s.job.verb)).length;
      const next = this.queue.findIndex((j) => !HEAVY.has(j.verb) || heavyBusy < this.heavyLanes);
      if (next < 0) return;
      const [job] = this.queue.splice(next, 1);
      const slot = this.idle.pop()!;
      slot.job = job;
      slot.id = this.nextId++;
      slot.worker.postMessage({ type: "call", id: slot.id, verb: job.verb, args: job.args } satisfies ToWorker);
    }
  }

  private cancel(job: Job): void {
    const queued = this.queue.indexOf(job);
    if (queued >= 0) {
      this.queue.splice(queued, 1);
      job.reject(job.signal!.reason);
      return;
    }
    for (const slot of this.slots) {
      if (slot.job === job) {
        job.reject(job.signal!.reason);
        this.replace(slot);
        return;
      }
    }
  }

  private adopt(slot: Slot): void {
    this.slots.add(slot);
    slot.worker.onmessage = (event: MessageEvent<FromWorker>) => this.settle(slot, event.data);
    slot.worker.onerror = (event) => {
      slot.job?.reject(new Error(`engine worker failed: ${event.message}`));
      this.replace(slot);
    };
    this.idle.push(slot);
    this.dispatch();
  }

  private settle(slot: Slot, m: FromWorker): void {
    const job = slot.job;
    if (job === null || (m.type !== "result" && m.type !== "error") || m.id !== slot.id) return;
    slot.job = null;
    if (m.type === "result") job.resolve(m.value);
    else job.reject(m.name === "EngineInputError" ? new EngineInputError(m.message) : m.name === "EngineStorageError" ? new EngineStorageError(m.message) : new Error(`engine worker: ${m.message}`));
    this.idle.push(slot);
    this.dispatch();
  }

  /** Terminates a worker (its job is settled already) and starts another in its place. */
  private replace(slot: Slot): void {
    slot.job = null;
    slot.worker.terminate();
    this.slots.delete(slot);
    const at = this.idle.indexOf(slot);
    if (at >= 0) this.idle.splice(at, 1);
    if (this.closed) return;
    spawn(this.options).then(
      ({ slot: fresh }) => (this.closed ? fresh.worker.terminate() : this.adopt(fresh)),
      (error: unknown) => console.error("edge: an engine worker could not be restarted", error),
    );
  }
}

/** One worker, resolved once it has loaded the model. */
function spawn(options: EnginePoolOptions): Promise<{ slot: Slot; shape: EngineShape }> {
  const worker = new Worker(new URL("./engine-worker.ts", import.meta.url).href);
  return new Promise((resolve, reject) => {
    worker.onmessage = (event: MessageEvent<FromWorker>) => {
      const m = event.data;
      if (m.type === "ready") {
        const { type: _, ...shape } = m;
        resolve({ slot: { worker, job: null, id: -1 }, shape });
      } else if (m.type === "failed") {
        worker.terminate();
        reject(new Error(m.message));
      }
    };
    worker.onerror = (event) => {
      worker.terminate();
      reject(new Error(`engine worker failed to start: ${event.message}`));
    };
    worker.postMessage({ type: "load", modelDir: options.modelDir, nets: options.nets, weights: options.weights, regionCacheBytes: options.regionCacheBytes, shard: options.shard ?? { budgetBytes: POOL_SHARD_BYTES } } satisfies ToWorker);
  });
}
