/**
 * `bun run train [flags]`: parses the official run.py flags, picks the backend, trains, and writes
 * the report and the exported model. Exit codes: 0 done, 1 failure, 2 command-line mistake,
 * 130 interrupted (a resumable checkpoint was written).
 */
import { join } from "node:path";
import { describeBackend, initBackend, BackendUnavailableError, type BackendChoice } from "../backend";
import { CliError, parseTrainArgs, trainHelp, type TrainConfig } from "../config";
import { FormatError } from "../../shared/formats/ndarray";
import { createProgress } from "../progress";
import { parseMetricsJsonl } from "../report";
import { renderReport } from "../report";
import { OUTPUT_FILES, type Data, type Run, TrainingFault, TrainingInterrupted, train } from "../train";
import { exportRun } from "../export";
import { readTokenizerJson } from "../text";
import { installStopSignals } from "../stop";
import { OutputWriteError, writeFileAtomic } from "../files";
import { readFileSync, existsSync } from "node:fs";

function explainIgnored(c: TrainConfig, log: (s: string) => void) {
  if (c.gpu !== null) log(`--gpu ${c.gpu}: with tfjs-node-gpu, TensorFlow uses the GPUs that CUDA_VISIBLE_DEVICES exposes (set CUDA_VISIBLE_DEVICES=${c.gpu}); otherwise ignored`);
  if (c.workers) log(`--workers ${c.workers}: batches are read in-process by positioned reads; no worker processes`);
  if (c.multiprocessing_distributed || c.world_size > 1) log("--multiprocessing-distributed / --world-size > 1: distributed training is not supported; training runs in one process (the official results are single-GPU)");
}

export async function writeReport(outputDir: string, config: Record<string, unknown>) {
  const path = join(outputDir, OUTPUT_FILES.metrics);
  const records = existsSync(path) ? parseMetricsJsonl(readFileSync(path, "utf8")) : [];
  writeFileAtomic(join(outputDir, OUTPUT_FILES.report), renderReport(records, { title: `PC2 training report — ${String(config.data_name)}`, config }));
}

export async function main(argv: string[]): Promise<number> {
  if (argv.includes("--help") || argv.includes("-h")) {
    console.log(trainHelp());
    return 0;
  }
  let config: TrainConfig;
  try {
    config = parseTrainArgs(argv);
  } catch (e) {
    if (e instanceof CliError) {
      console.error(`error: ${e.message}\nrun 'bun run train --help' for the flags and their defaults`);
      return 2;
    }
    throw e;
  }
  if (config.tokenizer_json) {
    // Checked now, not when the export at the end would find it unreadable.
    try {
      readTokenizerJson(config.tokenizer_json);
    } catch (e) {
      if (e instanceof FormatError) {
        console.error(`error: ${e.message}`);
        return 1;
      }
      throw e;
    }
  }
  const log = (s: string) => console.log(s);
  let backend;
  try {
    backend = await initBackend(config.backend as BackendChoice);
  } catch (e) {
    if (e instanceof BackendUnavailableError) {
      console.error(`error: ${e.message}`);
      return 2;
    }
    throw e;
  }
  log(describeBackend(backend));
  if (config.synthetic) log("No --data_path/--data_name/--vocab_path: training on the embedded synthetic dataset (f30k_precomp layout) with the small configuration; expect a few minutes on 2 CPU cores.");
  explainIgnored(config, log);

  const stop = installStopSignals((sig) => console.error(`\n${sig}: finishing the current step, then writing a resumable checkpoint (press again to abort now)`));

  const progress = createProgress({ tty: Boolean(process.stdout.isTTY), logStep: config.log_step, write: (s) => process.stdout.write(s) });
  const finish = async (run: Run, data: Data, outputDir: string, pause: () => Promise<void>) => {
    await writeReport(outputDir, run.config as unknown as Record<string, unknown>);
    log(`report: ${join(outputDir, OUTPUT_FILES.report)}`);
    if (run.cursor.stage === "done") {
      log(`exported model: ${await exportRun(run, data, outputDir, log, pause)}`);
    }
  };
  try {
    const r = await train(config, { log, progress, stopRequested: stop.requested, finish }, { backend: backend.name });
    log(`done: best validation rsum ${r.bestRsum.toFixed(1)} at epoch ${r.bestEpoch}; test rsum ${r.test ? r.test.rsum.toFixed(1) : "n/a"}; outputs in ${r.outputDir}`);
    return 0;
  } catch (e) {
    if (e instanceof TrainingInterrupted) {
      console.error(`${e.message}\nresume with: bun run train ${argv.join(" ")} --resume --model_path ${e.checkpoint}`);
      return 130;
    }
    if (e instanceof TrainingFault || e instanceof FormatError || e instanceof OutputWriteError) {
      console.error(`error: ${e.message}`);
      return 1;
    }
    throw e;
  }
}

if (import.meta.main) process.exit(await main(process.argv.slice(2)));
