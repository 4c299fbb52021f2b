/**
 * Outputs are never half-written under their final name, and a full or read-only disk is a clear
 * error, not a crash. The write path is exercised for real: ENOSPC through /dev/full in-process, and
 * whole training runs on a small tmpfs (mounted inside `unshare --user --map-root-user --mount`,
 * which needs no privileges where user namespaces are enabled, as on Debian and in CI).
 */
import { afterAll, beforeAll, describe, expect, setDefaultTimeout, test } from "bun:test";
import { existsSync, mkdirSync, readdirSync, symlinkSync, writeFileSync } from "node:fs";
import { join, resolve } from "node:path";
import { OutputWriteError, copyFileAtomic, removeStaleTemporaries, temporaryName, writeFileAtomic } from "../../trainer/files";
import type { SyntheticDataset } from "../../trainer/data/synthetic";
import { tempDir, tinyArgv, tinyDataset } from "./train-fixtures";

setDefaultTimeout(300_000);

const tmp = tempDir("pc2-files-");
let ds: SyntheticDataset;

beforeAll(() => {
  ds = tinyDataset(join(tmp.dir, "data"));
});
afterAll(tmp.cleanup);

function caught(f: () => void): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  throw new Error("expected an error");
}

describe("atomic writes", () => {
  test("a write that hits a full disk (ENOSPC) names the file, leaves no temporary and no final file", () => {
    const dir = join(tmp.dir, "full");
    mkdirSync(dir);
    const path = join(dir, "checkpoint.safetensors");
    // The temporary is where the bytes go first: make it the full device.
    symlinkSync("/dev/full", temporaryName(path));
    const e = caught(() => writeFileAtomic(path, new Uint8Array(1 << 16)));
    expect(e).toBeInstanceOf(OutputWriteError);
    expect((e as OutputWriteError).code).toBe("ENOSPC");
    expect((e as Error).message).toBe(`cannot write ${path}: no space left on the device (ENOSPC)`);
    expect(readdirSync(dir)).toEqual([]);
  });

  test("copyFileAtomic: a failed copy leaves the old file in place and no temporary", () => {
    const dir = join(tmp.dir, "copy");
    mkdirSync(dir);
    const to = join(dir, "best.safetensors");
    writeFileSync(to, "old");
    const e = caught(() => copyFileAtomic(join(dir, "missing"), to));
    expect(e).toBeInstanceOf(OutputWriteError);
    expect(readdirSync(dir)).toEqual(["best.safetensors"]);
  });

  test("stale temporaries of dead processes are removed; a live process's are kept", () => {
    const dir = join(tmp.dir, "stale");
    mkdirSync(dir);
    const dead = Bun.spawnSync(["true"]).pid; // exited: its pid names no live process (barring reuse)
    writeFileSync(join(dir, `checkpoint_latest_validation.safetensors.tmp-${dead}`), "half");
    mkdirSync(join(dir, `model.tmp-${dead}`));
    writeFileSync(join(dir, `results.json.tmp-${process.pid}`), "mine");
    writeFileSync(join(dir, "results.json"), "{}");
    expect(removeStaleTemporaries(dir).sort()).toEqual([`checkpoint_latest_validation.safetensors.tmp-${dead}`, `model.tmp-${dead}`]);
    expect(readdirSync(dir).sort()).toEqual(["results.json", `results.json.tmp-${process.pid}`]);
  });
});

/** Runs `bun run train` on a tmpfs of `size` bytes mounted at a fresh folder; `readOnly` remounts it read-only first. */
function trainOnTmpfs(name: string, size: number, readOnly: boolean) {
  const mnt = join(tmp.dir, name);
  mkdirSync(mnt);
  const out = join(mnt, "out");
  const train = [process.execPath, resolve(import.meta.dir, "../../trainer/cli/train.ts"), ...tinyArgv(ds, out, { backend: "wasm" })];
  const quoted = train.map((a) => `'${a.replaceAll("'", "'\\''")}'`).join(" ");
  const script = `mount -t tmpfs -o size=${size} tmpfs '${mnt}' || exit 99; ${readOnly ? `mount -o remount,ro '${mnt}' || exit 99;` : ""} ${quoted}; code=$?; ls -a '${mnt}' '${out}' 2>/dev/null; exit $code`;
  const p = Bun.spawnSync(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", script], { stdout: "pipe", stderr: "pipe" });
  const stdout = p.stdout.toString();
  const stderr = p.stderr.toString();
  if (p.exitCode === 99) throw new Error(`could not mount a tmpfs in a user namespace (unshare --user --map-root-user --mount): ${stderr}`);
  return { code: p.exitCode, stdout, stderr, files: stdout.slice(stdout.lastIndexOf(`${out}:`)) };
}

describe("bun run train on a full or read-only disk", () => {
  test("a full disk: exit 1, the file and ENOSPC named, no stack, no temporary and no partial checkpoint left", () => {
    // Room for config.json and the metrics, not for the first checkpoint.
    const r = trainOnTmpfs("small-disk", 64 * 1024, false);
    expect({ code: r.code, stderr: r.stderr.trim().split("\n").at(-1) }).toEqual({ code: 1, stderr: expect.stringMatching(/^error: cannot write .*\/out\/warmup_model_0\.safetensors: no space left on the device \(ENOSPC\)$/) });
    expect(r.stderr).not.toMatch(/^\s+at /m);
    expect(r.files).toContain("config.json");
    expect(r.files).not.toContain(".tmp-");
    expect(r.files).not.toContain("warmup_model_0.safetensors");
  });

  test("a read-only disk: exit 1 with EROFS and the file named", () => {
    const r = trainOnTmpfs("ro-disk", 1 << 20, true);
    expect(r.code).toBe(1);
    expect(r.stderr).toMatch(/error: cannot write .*\/out: the file system is read-only \(EROFS\)/);
    expect(r.stderr).not.toMatch(/^\s+at /m);
  });

  test("the tmpfs harness itself: an ample disk trains to the end", () => {
    const r = trainOnTmpfs("ample-disk", 64 << 20, false);
    expect({ code: r.code, stderr: r.stderr.slice(-500) }).toEqual({ code: 0, stderr: expect.any(String) });
    expect(r.files).toContain("checkpoint_best_validation.safetensors");
    expect(existsSync(join(tmp.dir, "ample-disk", "out"))).toBe(false); // the mount was private to the namespace
  });
});
