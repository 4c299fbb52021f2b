/**
 * The text side of edge/worker.ts, runtime-free so that tests import it without the Worker's
 * WebAssembly imports: that entry leaves Jieba out, and a NoW jieba model it serves answers text
 * with a 501 whose message names the entry that has it (edge/worker-jieba.ts).
 */
import type { JiebaSource } from "../shared/text/jieba.ts";

export const WORKER_WITHOUT_JIEBA: JiebaSource = {
  unavailable: "this Worker is built without Jieba (edge/worker.ts); deploy edge/worker-jieba.ts (wrangler.toml's main) to take Chinese text for a NoW jieba model",
};
