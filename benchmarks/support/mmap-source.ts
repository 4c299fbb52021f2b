/**
 * A ByteSource over a memory-mapped file: the "mmap" and "mmap-drop" modes of
 * benchmarks/features_rss.ts, measured against the positioned reads of trainer/data/features.ts
 * (the figures are in that file's comment).
 *
 * `Bun.mmap` maps windows of at most 1 GiB (one mapping above 4 GiB fails in Bun 1.4, and
 * Flickr30K's 8.5 GB file is above it). Every page touched stays in RSS (as RssFile) while its
 * window is mapped, and with large page-cache folios a random row maps far more than its own bytes;
 * Bun unmaps only when the collector reclaims the array, so an epoch drives RSS to the file size,
 * and dropping the mapping every few batches still leaves RSS in the gigabytes. Bun.mmap also opens
 * the file read-write (fails on a read-only mount) and crashes the process if the file is truncated
 * while mapped. It was no faster, which is why the trainer reads instead.
 */
import { FormatError } from "../../shared/formats/ndarray";
import { type ByteSource, fileSource } from "../../trainer/data/features";

/** Largest window one mapping covers; a whole-file mapping above 4 GiB fails in Bun. */
export const MMAP_WINDOW_BYTES = 2 ** 30;

/**
 * Windows of the file mapped with Bun.mmap (MAP_PRIVATE, so that a stray write never reaches the
 * file). Falls back to positioned reads when mapping is impossible (read-only file or mount, a file
 * system without mmap).
 */
export function mmapSource(path: string): ByteSource {
  // Opened for reading first: that gives the size, the trainer's error for a missing file, and
  // the fallback.
  const reads = fileSource(path);
  const size = reads.size;
  if (size === 0) return reads;
  const windows = new Map<number, Uint8Array>();
  const windowAt = (w: number): Uint8Array => {
    let m = windows.get(w);
    if (!m) {
      const offset = w * MMAP_WINDOW_BYTES;
      m = Bun.mmap(path, { shared: false, offset, size: Math.min(MMAP_WINDOW_BYTES, size - offset) });
      windows.set(w, m);
    }
    return m;
  };
  try {
    windowAt(0);
  } catch {
    return reads;
  }
  reads.close();
  return {
    size,
    readAt(dst, position) {
      if (position + dst.length > size) {
        throw new FormatError(path, `read of ${dst.length} bytes at ${position} passes the end of the file (${size} bytes)`);
      }
      let done = 0;
      while (done < dst.length) {
        const p = position + done;
        const w = Math.floor(p / MMAP_WINDOW_BYTES);
        const m = windowAt(w);
        const from = p - w * MMAP_WINDOW_BYTES;
        const len = Math.min(dst.length - done, m.length - from);
        dst.set(m.subarray(from, from + len), done);
        done += len;
      }
    },
    close() {
      // Bun unmaps when the collector reclaims the arrays; dropping them is all we can do.
      windows.clear();
    },
  };
}
