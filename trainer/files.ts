/**
 * Files a run writes: never half a file under a final name. Each is written to `<name>.tmp-<pid>`
 * in the same folder, flushed and renamed; a failed write removes its temporary and says which
 * file could not be written and why (a full or read-only disk is the user's to fix, not a bug), and
 * a run removes the temporaries that killed runs left in its output folder.
 */
import { closeSync, copyFileSync, fsyncSync, openSync, readdirSync, renameSync, rmSync, writeSync } from "node:fs";
import { join } from "node:path";

/** Why an output could not be written: the file, and the system's reason (ENOSPC, EROFS, EACCES, …). */
export class OutputWriteError extends Error {
  constructor(
    readonly path: string,
    readonly code: string,
    reason: string,
  ) {
    super(`cannot write ${path}: ${reason}${code ? ` (${code})` : ""}`);
    this.name = "OutputWriteError";
  }
}

const REASONS: Record<string, string> = {
  ENOSPC: "no space left on the device",
  EDQUOT: "disk quota exceeded",
  EROFS: "the file system is read-only",
  EACCES: "permission denied",
  EPERM: "operation not permitted",
  ENOENT: "its folder does not exist",
};

/** The OutputWriteError for a failed file-system call on `path`; other errors pass through. */
export function outputError(path: string, e: unknown): unknown {
  const code = (e as NodeJS.ErrnoException)?.code;
  if (typeof code !== "string") return e;
  return new OutputWriteError(path, code, REASONS[code] ?? String((e as Error).message).split("\n")[0]);
}

/** The temporary name of an output while it is written. */
export function temporaryName(path: string): string {
  return `${path}.tmp-${process.pid}`;
}

/** Writes atomically: a temporary file in the same folder, flushed, then renamed over `path`. */
export function writeFileAtomic(path: string, bytes: Uint8Array | string): void {
  const tmp = temporaryName(path);
  try {
    const fd = openSync(tmp, "w");
    try {
      const data = typeof bytes === "string" ? new TextEncoder().encode(bytes) : bytes;
      let off = 0;
      while (off < data.length) off += writeSync(fd, data, off, data.length - off);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, path);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw outputError(path, e);
  }
}

/** Copies `from` to `to` atomically (the copy is made under a temporary name, then renamed). */
export function copyFileAtomic(from: string, to: string): void {
  const tmp = temporaryName(to);
  try {
    copyFileSync(from, tmp);
    const fd = openSync(tmp, "r+");
    try {
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, to);
  } catch (e) {
    rmSync(tmp, { force: true });
    throw outputError(to, e);
  }
}

function alive(pid: number): boolean {
  if (pid === process.pid) return true;
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === "EPERM";
  }
}

/**
 * Removes the temporaries (`*.tmp-<pid>`, files or folders) that processes no longer running left
 * in `dir` — a run killed with kill -9 or stopped by a full disk. Returns the names removed.
 */
export function removeStaleTemporaries(dir: string): string[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch {
    return [];
  }
  const removed: string[] = [];
  for (const name of names) {
    const m = /\.tmp-(\d+)$/.exec(name);
    if (!m || alive(Number(m[1]))) continue;
    try {
      rmSync(join(dir, name), { recursive: true, force: true });
    } catch (e) {
      throw outputError(join(dir, name), e);
    }
    removed.push(name);
  }
  return removed;
}
