/**
 * Real signals sent to a real `bun run train` child process.
 *
 * To hit a phase exactly, the child runs with PC2_SIGSTOP_AT=<phase>: at its first pause in that
 * phase it stops itself (SIGSTOP). The test then sends SIGINT (or SIGTERM) and SIGCONT, as a
 * Ctrl-C in the middle of that phase would arrive. The child must stop at that very point (the
 * checkpoint's cursor says where), exit 130 with `checkpoint_interrupted` readable, and a chain
 * of such interruptions through every phase, each resumed, must end exactly as the uninterrupted
 * run. Exits are awaited with generous bounds: a bound that passes is not a timing claim.
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, readFileSync, readdirSync, watch } from "node:fs";
import { join } from "node:path";
import { readCheckpointFile } from "../../trainer/checkpoint";
import type { SyntheticDataset } from "../../trainer/data/synthetic";
import { OUTPUT_FILES, type RunPhase } from "../../trainer/train";
import { COTRAIN_PARTS } from "../../trainer/run-state";
import { REPO_ROOT, withTimeout } from "../support";
import { expectSameFinalRun, readMetrics, tempDir, tinyArgv, tinyDataset } from "./train-fixtures";

setDefaultTimeout(900_000);

/** Exits are awaited this long after the signal: far above a tiny step, so a pass says "it answered". */
const EXIT_BOUND_MS = 120_000;

interface Child {
  proc: ReturnType<typeof Bun.spawn>;
  output: () => string;
}

function spawnTrain(argv: string[], env: Record<string, string> = {}): Child {
  const proc = Bun.spawn([process.execPath, "trainer/cli/train.ts", ...argv, "--backend", "wasm"], {
    cwd: REPO_ROOT,
    env: { ...process.env, ...env },
    stdout: "pipe",
    stderr: "pipe",
  });
  let text = "";
  const drain = async (s: ReadableStream<Uint8Array>) => {
    const decoder = new TextDecoder();
    const reader = s.getReader();
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      text += decoder.decode(value, { stream: true });
    }
  };
  void drain(proc.stdout as ReadableStream<Uint8Array>);
  void drain(proc.stderr as ReadableStream<Uint8Array>);
  return { proc, output: () => text };
}

/** The process state letter of /proc/<pid>/stat ("T" once it stopped itself). */
function procState(pid: number): string | null {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, "utf8");
    return stat.slice(stat.lastIndexOf(")") + 2).split(" ")[0];
  } catch {
    return null;
  }
}

async function waitStopped(child: Child): Promise<void> {
  for (;;) {
    if (procState(child.proc.pid) === "T") return;
    if (child.proc.exitCode !== null || child.proc.signalCode !== null) {
      throw new Error(`the child ended (exit ${child.proc.exitCode}, signal ${child.proc.signalCode}) before stopping itself:\n${child.output().slice(-3000)}`);
    }
    await Bun.sleep(20);
  }
}

async function exitOf(child: Child): Promise<number> {
  return withTimeout(child.proc.exited, EXIT_BOUND_MS, () => `no exit within ${EXIT_BOUND_MS} ms:\n${child.output().slice(-3000)}`);
}

const tmp = tempDir("pc2-signals-");
let ds: SyntheticDataset;
let full: string;
const argvFor = (out: string, extra: Record<string, string | true> = {}) => tinyArgv(ds, out, extra);

beforeAll(async () => {
  ds = tinyDataset(join(tmp.dir, "data"));
  full = join(tmp.dir, "full");
  const child = spawnTrain(argvFor(full));
  expect([await exitOf(child), child.output().slice(-2000)]).toEqual([0, expect.any(String)]);
});
afterAll(tmp.cleanup);

/** Where each phase's first pause leaves the cursor (the tiny schedule: 1 warmup epoch, 2 co-training epochs). */
const EXPECTED_CURSOR: Record<RunPhase, { stage: "warmup" | "cotrain" | "done"; epoch: number; part: number; step: number }> = {
  warmup: { stage: "warmup", epoch: 0, part: 0, step: 1 }, // after warmup A's first step
  validation: { stage: "warmup", epoch: 1, part: 0, step: 0 }, // the post-warmup validation, redone on resume
  split: { stage: "cotrain", epoch: 0, part: 0, step: 0 }, // a split is redone from its start
  train: { stage: "cotrain", epoch: 0, part: 1, step: 1 }, // after train A's first step
  test: { stage: "cotrain", epoch: 0, part: COTRAIN_PARTS.length, step: 0 }, // epoch 0's test, after its validation
  export: { stage: "done", epoch: 2, part: 0, step: 0 }, // training done, the export under way
};

describe("SIGINT and SIGTERM answered in every phase (real child processes)", () => {
  test("interrupted once in each phase, resumed each time: exits 130 at that point, and the chain ends as the uninterrupted run", async () => {
    const dir = join(tmp.dir, "chain");
    const interrupted = join(dir, OUTPUT_FILES.interrupted);
    const phases: RunPhase[] = ["warmup", "validation", "split", "train", "test", "export"];
    for (const [i, phase] of phases.entries()) {
      const argv = i === 0 ? argvFor(dir) : argvFor(dir, { resume: true, model_path: interrupted });
      const child = spawnTrain(argv, { PC2_SIGSTOP_AT: phase });
      await waitStopped(child);
      const signal = phase === "train" ? "SIGTERM" : "SIGINT";
      process.kill(child.proc.pid, signal);
      process.kill(child.proc.pid, "SIGCONT");
      const code = await exitOf(child);
      const out = child.output();
      expect([phase, code]).toEqual([phase, 130]);
      expect(out).toContain(`${signal}: finishing the current step`);
      expect(out).toContain("resume with: bun run train");

      const { state } = readCheckpointFile(interrupted); // readable, digest verified
      const { dataRng: _, ...cursor } = state.cursor;
      expect({ phase, cursor }).toEqual({ phase, cursor: EXPECTED_CURSOR[phase] });
      const records = readMetrics(dir);
      if (phase === "validation") expect(records.some((r) => r.type === "validation")).toBe(false);
      if (phase === "split") expect(records.some((r) => r.type === "split")).toBe(false);
      if (phase === "test") {
        expect(records.some((r) => r.type === "validation" && r.epoch === 0)).toBe(true);
        expect(records.some((r) => r.type === "test" && r.epoch === 0)).toBe(false);
      }
      if (phase === "export") expect(existsSync(join(dir, OUTPUT_FILES.model))).toBe(false);
    }
    const last = spawnTrain(argvFor(dir, { resume: true, model_path: interrupted }));
    expect([await exitOf(last), last.output().slice(-2000)]).toEqual([0, expect.any(String)]);
    expectSameFinalRun(full, dir, 0);
    // The exported model: the same files, byte for byte, except model.json (it records the run's flags, --resume among them).
    const files = (d: string) => readdirSync(join(d, OUTPUT_FILES.model)).filter((f) => f !== "model.json").sort();
    expect(files(dir)).toEqual(files(full));
    for (const f of files(full)) expect([f, Bun.hash(readFileSync(join(dir, OUTPUT_FILES.model, f)))]).toEqual([f, Bun.hash(readFileSync(join(full, OUTPUT_FILES.model, f)))]);
  });

  test("kill -9 while a checkpoint is being written leaves every complete file intact; resuming from the last one ends as the uninterrupted run", async () => {
    const dir = join(tmp.dir, "killed");
    const child = spawnTrain(argvFor(dir));
    // Kill at the moment the second checkpoint write begins (the first is warmup_model_0).
    const temporaries = new Set<string>();
    let sawTemporary = false;
    const { promise: killed, resolve } = Promise.withResolvers<void>();
    const until = Date.now() + EXIT_BOUND_MS * 5;
    while (!existsSync(dir) && Date.now() < until) await Bun.sleep(5);
    const watcher = watch(dir, (_event, name) => {
      if (!name?.includes(".safetensors.tmp-") || sawTemporary) return;
      temporaries.add(name);
      if (temporaries.size < 2) return;
      sawTemporary = true;
      child.proc.kill("SIGKILL");
      resolve();
    });
    await Promise.race([killed, child.proc.exited]);
    watcher.close();
    await child.proc.exited;
    expect([sawTemporary, child.proc.signalCode]).toEqual([true, "SIGKILL"]);

    const complete = readdirSync(dir).filter((f) => f.endsWith(".safetensors"));
    expect(complete).toContain(OUTPUT_FILES.warmup(0));
    for (const f of complete) readCheckpointFile(join(dir, f)); // throws on a partial or corrupt file
    const from = complete.includes(OUTPUT_FILES.latest) ? OUTPUT_FILES.latest : OUTPUT_FILES.warmup(0);
    const resumed = spawnTrain(argvFor(dir, { resume: true, model_path: join(dir, from) }));
    expect([await exitOf(resumed), resumed.output().slice(-2000)]).toEqual([0, expect.any(String)]);
    expect(readdirSync(dir).filter((f) => f.includes(".tmp-"))).toEqual([]);
    expectSameFinalRun(full, dir, 0);
  });
});

describe("SIGINT while both nets train on workers (--parallel on)", () => {
  test("the workers stop after their current step; the checkpoint holds each net's place, and the resumed run ends as the uninterrupted parallel run", async () => {
    const reference = join(tmp.dir, "parallel-full");
    const whole = spawnTrain(argvFor(reference, { parallel: "on" }));
    expect([await exitOf(whole), whole.output().slice(-2000)]).toEqual([0, expect.any(String)]);

    const dir = join(tmp.dir, "parallel");
    const interrupted = join(dir, OUTPUT_FILES.interrupted);
    const child = spawnTrain(argvFor(dir, { parallel: "on" }), { PC2_SIGSTOP_AT: "warmup" });
    await waitStopped(child); // at the first step that a worker reported
    process.kill(child.proc.pid, "SIGINT");
    process.kill(child.proc.pid, "SIGCONT");
    expect(await exitOf(child)).toBe(130);
    const { cursor } = readCheckpointFile(interrupted).state;
    expect([cursor.stage, cursor.epoch, cursor.part]).toEqual(["warmup", 0, 0]);
    expect(cursor.lanes).toBeDefined(); // inside warmup A+B: each net's own step count
    const resumed = spawnTrain(argvFor(dir, { parallel: "on", resume: true, model_path: interrupted }));
    expect([await exitOf(resumed), resumed.output().slice(-2000)]).toEqual([0, expect.any(String)]);
    expectSameFinalRun(reference, dir, 0);
  });
});

describe("a second signal aborts at once", () => {
  test("after the first SIGINT, a second one ends the process in the middle of a step that never yields", async () => {
    const child = Bun.spawn([process.execPath, join(import.meta.dir, "fixtures", "stop-signals-child.ts")], { stdout: "pipe", stderr: "pipe" });
    const reader = (child.stdout as ReadableStream<Uint8Array>).getReader();
    let out = "";
    const waitFor = async (text: string) => {
      while (!out.includes(text)) {
        const { value, done } = await reader.read();
        if (done) throw new Error(`the child ended before printing ${JSON.stringify(text)}:\n${out}`);
        out += new TextDecoder().decode(value);
      }
    };
    await waitFor("ready");
    child.kill("SIGINT");
    await waitFor("busy");
    child.kill("SIGINT");
    await withTimeout(child.exited, EXIT_BOUND_MS, () => `no exit after the second SIGINT:\n${out}`);
    expect(child.signalCode).toBe("SIGINT");
    expect(out).toContain("first signal: SIGINT");
    expect(out).not.toContain("the long step finished");
  });
});
