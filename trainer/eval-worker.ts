/**
 * A worker of the evaluation pool (trainer/eval-pool.ts): its own tfjs backend, the splits it was
 * given (captions in memory, features read from their file by position), and one net per task,
 * sent as arrays. It computes what evaluation and the split pass compute in the main thread,
 * with the same functions, so the results are the same numbers.
 */
import { klConsistency } from "../shared/eval/split";
import { ParamStore } from "../shared/model/params";
import { evalLoss } from "../shared/model/steps";
import { type BackendChoice, initBackend } from "./backend";
import { batchesInOrder } from "./data/batches";
import { openFeatures } from "./data/features";
import { encodeSplit, ensembleSims } from "./evaluate";
import type { LaneResult, NetArrays, PoolReply, PoolRequest, PoolSplit, SplitSpec } from "./eval-pool";
import { type OnStep, cotrainSteps, warmupSteps } from "./net-steps";
import { Adam } from "../shared/model/optim";
import type { Net } from "../shared/model/steps";
import { Random } from "../shared/random";

declare const self: Worker;

const splits = new Map<string, PoolSplit>();

function openSplit(spec: SplitSpec): PoolSplit {
  const images = openFeatures(spec.imagesFile, { regions: spec.regions, imgDim: spec.imgDim });
  return { ...spec, images };
}

let stop: Int32Array | null = null;

/**
 * Every shard and batch leaves its read-backs to the collector, which in a busy worker ran too
 * seldom: an e2e validation grew the process by ~1.2 GB (2 workers) before it ran. Asked after each
 * shard and batch, the peak stays near the live data (benchmarks/parallel_e2e.ts measures it).
 */
const collect = () => Bun.gc(false);

async function handle(req: PoolRequest, id: number): Promise<{ result: unknown; transfer: ArrayBuffer[] }> {
  switch (req.kind) {
    case "init": {
      stop = new Int32Array(req.stop);
      const info = await initBackend(req.backend as BackendChoice);
      return { result: info.name, transfer: [] };
    }
    case "split": {
      splits.get(req.key)?.images.close();
      splits.set(req.key, openSplit(req.spec));
      return { result: null, transfer: [] };
    }
    case "sims": {
      const split = splits.get(req.key)!;
      // Similarities need no training-only parameter (an exported model has none).
      const p = ParamStore.fromArrays(req.model, req.net, "eval pool", "", true);
      try {
        const enc = await encodeSplit(p, split, { batchSize: req.batchSize });
        const out: Float32Array[] = [];
        for (const b of req.blocks) {
          const images = Int32Array.from({ length: b.images[1] - b.images[0] }, (_, i) => b.images[0] + i);
          out.push(await ensembleSims([enc], [p], { ...(req.budgetBytes === undefined ? {} : { budgetBytes: req.budgetBytes }), betweenShards: collect }, images, b.captions));
        }
        return { result: out, transfer: out.map((s) => s.buffer as ArrayBuffer) };
      } finally {
        p.dispose();
      }
    }
    case "lane": {
      const split = splits.get(req.key)!;
      const net: Net = { params: ParamStore.fromArrays(req.model, req.net, "parallel lane"), optimizer: new Adam({ lr: req.lr }) };
      try {
        net.optimizer.loadArrays(req.optimizer);
        const bank = { probs: Float32Array.from(req.bank.probs), has: Uint8Array.from(req.bank.has), classes: req.bank.classes };
        const lane = { net, bank, dataRng: Random.fromState(req.dataRng), modelRng: Random.fromState(req.modelRng), step: req.step };
        const pairs = { captions: split.captions, images: split.images, t2i: split.t2i! };
        const onStep: OnStep = async (i, total, values) => {
          self.postMessage({ id, event: { i, total, values } } satisfies PoolReply);
          return Atomics.load(stop!, 0) === 1;
        };
        const end = req.part === "warmup" ? await warmupSteps(lane, pairs, req.config, req.where, onStep) : await cotrainSteps(lane, pairs, req.config, req.split!, req.epoch, req.where, onStep);
        const params = await net.params.toArrays();
        const optimizer = await net.optimizer.toArrays();
        const result: LaneResult = { net: params as NetArrays, optimizer: optimizer as NetArrays, bank, modelRng: lane.modelRng.state(), step: end.step, stopped: end.stopped };
        return { result, transfer: [bank.probs.buffer, bank.has.buffer] };
      } finally {
        net.params.dispose();
        net.optimizer.reset();
      }
    }
    case "losses": {
      const split = splits.get(req.key)!;
      const p = ParamStore.fromArrays(req.model, req.net, "eval pool");
      try {
        const N = split.length;
        const K = req.bank.classes;
        const loss = new Float64Array(N);
        const ctt = new Float64Array(N);
        const ids = Int32Array.from({ length: N }, (_, i) => i);
        for (const batch of batchesInOrder({ captions: split.captions, images: split.images, t2i: split.t2i! }, ids, req.order, { batchSize: req.batchSize })) {
          const r = evalLoss(p, batch, req.margin);
          collect();
          for (let b = 0; b < batch.size; b++) {
            const id = batch.ids[b];
            loss[id] = r.loss[b];
            if (req.bank.has[id]) ctt[id] = klConsistency(r.probs.subarray(b * K, (b + 1) * K), req.bank.probs.subarray(id * K, (id + 1) * K), K)[0];
          }
        }
        return { result: { loss, ctt }, transfer: [loss.buffer, ctt.buffer] };
      } finally {
        p.dispose();
      }
    }
  }
}

self.onmessage = async (event: MessageEvent<PoolRequest & { id: number }>) => {
  const { id } = event.data;
  try {
    const { result, transfer } = await handle(event.data, id);
    self.postMessage({ id, ok: true, result } satisfies PoolReply, transfer);
  } catch (e) {
    self.postMessage({ id, ok: false, name: e instanceof Error ? e.name : "Error", error: e instanceof Error ? `${e.message}${process.env.PC2_POOL_DEBUG ? `\n${e.stack}` : ""}` : String(e) } satisfies PoolReply);
  }
};
