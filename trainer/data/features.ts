/**
 * Precomputed region features (`*_ims.npy`, shape (images, 36, img_dim)) read row by row, never
 * loaded whole: Flickr30K's train file is 8.5 GB and MS-COCO's 33 GB at img_dim 2048.
 *
 * The official PrecompDataset holds the whole array (`np.load`) and indexes `images[t2i[i]]`;
 * `gather` is that indexing for a batch.
 *
 * Rows are reached by positioned reads (`pread`) straight into the caller's output array. RSS is
 * bounded by the runtime's baseline + the output batch (B × 36 × img_dim × 4 bytes) + one row of
 * scratch for float16 / float64 files, whatever the file size: the file lives in the kernel's page
 * cache, which is not charged to the process. It works on read-only files/mounts.
 *
 * Memory-mapping the file was measured against it by benchmarks/features_rss.ts, which passes its
 * own ByteSource (benchmarks/support/mmap-source.ts, where the reasons are) to featuresFromSource
 * (4 GB float32 file of (13563, 36, 2048), shuffled batches of 128 rows = 37.7 MB, one epoch, warm
 * page cache, 2 shared cores; two runs):
 *
 *   read       12.5–17.8k rows/s  3.7–5.2 GB/s  peak RSS   80 MB
 *   mmap       10.7–17.9k rows/s  3.1–5.3 GB/s  peak RSS 4081 MB  (the whole file)
 *   mmap-drop   9.1–14.3k rows/s  2.7–4.2 GB/s  peak RSS 1809 MB  (mapping dropped + GC every 8 batches)
 *
 * It was no faster and drove RSS to the file size.
 */
import { closeSync, fstatSync, openSync, readSync } from "node:fs";
import { readNpyHeader, type NpyHeader, type RandomAccessBytes } from "../../shared/formats/npy";
import { FormatError, halfToFloat } from "../../shared/formats/ndarray";

export interface FeatureStore {
  readonly file: string;
  /** Number of images (rows). */
  readonly count: number;
  /** Regions per image (36 for the official features). */
  readonly regions: number;
  /** Feature size of one region (`--img_dim`). */
  readonly dim: number;
  /** Element type in the file; gathered rows are always float32. */
  readonly dtype: "float16" | "float32" | "float64";
  /** Rows (images) `indices` copied into one Float32Array of indices.length*regions*dim, in order. */
  gather(indices: ArrayLike<number>, out?: Float32Array): Float32Array;
  close(): void;
}

export interface OpenFeaturesOptions {
  /** Expected regions per image; checked when given. */
  regions?: number;
  /** Expected feature size (the user's `--img_dim`); checked when given. */
  imgDim?: number;
  /** How the user set `imgDim`, for the error message. */
  imgDimFlag?: string;
}

export const OPEN_FEATURES_DEFAULTS = {
  imgDimFlag: "--img_dim",
};

/**
 * Positioned byte access to a file: the part of a store that differs between production
 * (fileSource), tests (which count what is read) and benchmarks (a memory mapping).
 */
export interface ByteSource extends RandomAccessBytes {
  /** Throws if the file ends before `dst` is full. */
  readAt(dst: Uint8Array, position: number): void;
  close(): void;
}

/** Opens an `*_ims.npy`, reading only its header. */
export function openFeatures(path: string, options: OpenFeaturesOptions = {}): FeatureStore {
  const source = fileSource(path);
  try {
    return featuresFromSource(source, path, options);
  } catch (e) {
    source.close();
    throw e;
  }
}

/** A store over any ByteSource holding a `.npy` file (tests count reads through it, benchmarks map the file). */
export function featuresFromSource(source: ByteSource, file: string, options: OpenFeaturesOptions = {}): FeatureStore {
  const header = readNpyHeader(source, file);
  const { count, regions, dim } = checkShape(header, file, options);
  if (header.dtype !== "float32" && header.dtype !== "float16" && header.dtype !== "float64") {
    throw new FormatError(file, `features must be float16, float32 or float64, found ${header.dtype}`);
  }
  return new SourceStore(source, file, header.dtype, header.dataOffset, count, regions, dim);
}

/** A store over features already in memory (tests, the synthetic dataset). */
export function memoryFeatures(data: Float32Array, count: number, regions: number, dim: number, file = "<memory>"): FeatureStore {
  if (data.length !== count * regions * dim) {
    throw new FormatError(file, `features hold ${data.length} values, shape (${count}, ${regions}, ${dim}) needs ${count * regions * dim}`);
  }
  const rowLen = regions * dim;
  return {
    file,
    count,
    regions,
    dim,
    dtype: "float32",
    gather(indices, out) {
      const dst = outputFor(out, indices.length, rowLen, file);
      for (let k = 0; k < indices.length; k++) {
        const row = checkRow(indices[k], count, file);
        dst.set(data.subarray(row * rowLen, (row + 1) * rowLen), k * rowLen);
      }
      return dst;
    },
    close() {},
  };
}

function checkShape(header: NpyHeader, file: string, options: OpenFeaturesOptions) {
  const shape = header.shape;
  const found = `(${shape.join(", ")})`;
  if (shape.length !== 3) {
    throw new FormatError(file, `image features must have rank 3 (images, regions, img_dim), found shape ${found}`);
  }
  const [count, regions, dim] = shape;
  if (options.regions !== undefined && regions !== options.regions) {
    throw new FormatError(file, `image features have ${regions} regions per image (shape ${found}), expected ${options.regions}`);
  }
  if (options.imgDim !== undefined && dim !== options.imgDim) {
    const flag = options.imgDimFlag ?? OPEN_FEATURES_DEFAULTS.imgDimFlag;
    throw new FormatError(file, `image features have shape ${found} (img_dim ${dim}) but ${flag} is ${options.imgDim}; pass ${flag} ${dim}`);
  }
  return { count, regions, dim };
}

class SourceStore implements FeatureStore {
  private readonly rowLen: number;
  private readonly rowBytes: number;
  /** One row of raw bytes, for the dtypes that need converting. */
  private scratch: Uint8Array | null = null;
  private closed = false;

  constructor(
    private readonly source: ByteSource,
    readonly file: string,
    readonly dtype: "float16" | "float32" | "float64",
    private readonly dataOffset: number,
    readonly count: number,
    readonly regions: number,
    readonly dim: number,
  ) {
    this.rowLen = regions * dim;
    this.rowBytes = this.rowLen * (dtype === "float16" ? 2 : dtype === "float32" ? 4 : 8);
  }

  gather(indices: ArrayLike<number>, out?: Float32Array): Float32Array {
    if (this.closed) throw new Error(`${this.file}: feature store is closed`);
    const n = indices.length;
    const dst = outputFor(out, n, this.rowLen, this.file);
    let k = 0;
    while (k < n) {
      // Consecutive indices (evaluation walks the file in order) become one read.
      const first = checkRow(indices[k], this.count, this.file);
      let run = 1;
      while (k + run < n && checkRow(indices[k + run], this.count, this.file) === first + run) run++;
      this.readRows(first, run, dst, k * this.rowLen);
      k += run;
    }
    return dst;
  }

  private readRows(first: number, rows: number, dst: Float32Array, at: number): void {
    const position = this.dataOffset + first * this.rowBytes;
    if (this.dtype === "float32") {
      // The file's little-endian float32 bytes are the output's bytes: read straight into it.
      this.source.readAt(new Uint8Array(dst.buffer, dst.byteOffset + at * 4, rows * this.rowBytes), position);
      return;
    }
    this.scratch ??= new Uint8Array(this.rowBytes);
    const raw = this.scratch;
    const len = this.rowLen;
    for (let r = 0; r < rows; r++) {
      this.source.readAt(raw, position + r * this.rowBytes);
      const o = at + r * len;
      if (this.dtype === "float16") {
        const h = new Uint16Array(raw.buffer, raw.byteOffset, len);
        const table = halfToFloatTable();
        for (let i = 0; i < len; i++) dst[o + i] = table[h[i]];
      } else {
        const d = new Float64Array(raw.buffer, raw.byteOffset, len);
        for (let i = 0; i < len; i++) dst[o + i] = d[i];
      }
    }
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.source.close();
  }
}

function outputFor(out: Float32Array | undefined, n: number, rowLen: number, file: string): Float32Array {
  if (!out) return new Float32Array(n * rowLen);
  if (out.length < n * rowLen) {
    throw new Error(`${file}: output holds ${out.length} values, ${n} rows need ${n * rowLen}`);
  }
  return out;
}

function checkRow(value: number, count: number, file: string): number {
  if (!Number.isInteger(value) || value < 0 || value >= count) {
    throw new RangeError(`${file}: image index ${value} out of range [0, ${count})`);
  }
  return value;
}

/** Positioned reads with `fs.readSync` on one descriptor. */
export function fileSource(path: string): ByteSource {
  const fd = openFile(path);
  const size = fstatSync(fd).size;
  let open = true;
  return {
    size,
    readAt(dst, position) {
      if (!open) throw new Error(`${path}: file is closed`);
      let done = 0;
      // read(2) may return fewer bytes than asked (large requests are split by the kernel).
      while (done < dst.length) {
        const got = readSync(fd, dst, done, dst.length - done, position + done);
        if (got === 0) {
          throw new FormatError(path, `file ended at byte ${position + done}, expected ${dst.length - done} more bytes (truncated while open?)`);
        }
        done += got;
      }
    },
    close() {
      if (open) closeSync(fd);
      open = false;
    },
  };
}

function openFile(path: string): number {
  try {
    return openSync(path, "r");
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    if (code === "ENOENT") throw new FormatError(path, "file not found");
    throw new FormatError(path, `cannot open (${code ?? (e as Error).message})`);
  }
}

let halfTable: Float32Array | null = null;

/** All 65,536 half-precision values widened once: a table lookup per element instead of a call. */
function halfToFloatTable(): Float32Array {
  if (!halfTable) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}
