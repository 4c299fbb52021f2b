/**
 * Noisy correspondences of the training split, as PrecompDataset builds them for `data_split ==
 * "train"`: the clean image of caption i is `i // im_div`; with a noise ratio r > 0 the index comes
 * from `--noise_file` when that file exists, otherwise a fraction r of the captions get their image
 * indices shuffled among themselves and the result is saved to `--noise_file`.
 *
 * The official files (noise_index/f30k_precomp_{0.2,0.4,0.6}.npy, drawn by numpy) are the noise the
 * paper's figures were measured on; a generated index has the same statistics but different pairs,
 * because numpy's generator cannot be reproduced here. Read the official files for comparisons.
 */
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from "node:fs";
import { dirname, join } from "node:path";
import { FormatError, toIndexArray } from "../../shared/formats/ndarray";
import { readNpy, writeNpy } from "../../shared/formats/npy";
import { hasNaturalNoise } from "./datasets";
import { Random } from "../../shared/random";

export interface NoiseIndex {
  /** Image index of each caption (PrecompDataset.t2i_index). */
  t2i: Int32Array;
  /** 1 where `t2i[i] != floor(i / imDiv)` (a mismatched pair), else 0 (PrecompDataset._labels, inverted). */
  noisy: Uint8Array;
  source: "file" | "generated" | "none";
  /** The file read or written, when there is one. */
  file?: string;
}

export interface NoiseOptions {
  /** Captions in the training split. */
  captions: number;
  /** Images in the training split. */
  images: number;
  /** Captions per image (PrecompDataset.im_div). */
  imDiv: number;
  /** `--noise_ratio`, in [0, 1). */
  noiseRatio: number;
  /** `--noise_file`: read when it exists, else written. Required when noiseRatio > 0. */
  noiseFile?: string;
  /** Seed of the draw when the file has to be generated. */
  seed?: number;
}

export const NOISE_DEFAULTS = { seed: 0 };

/** The clean pairing `t2i[i] = floor(i / imDiv)`. */
export function cleanIndex(captions: number, imDiv: number): Int32Array {
  const t2i = new Int32Array(captions);
  for (let i = 0; i < captions; i++) t2i[i] = Math.floor(i / imDiv);
  return t2i;
}

/**
 * The noise index of the training split (PrecompDataset.__init__ for data_split "train").
 * Like `np.save`, a file name without `.npy` is saved with `.npy` appended; and since the README's
 * own commands pass `--noise_file noise_index/f30k_precomp_0.4` (no extension) for a file that is
 * named `f30k_precomp_0.4.npy`, `<name>.npy` is also looked for before drawing: the official code
 * would miss it, draw fresh noise and overwrite the official file.
 */
export function loadOrCreateNoise(opts: NoiseOptions): NoiseIndex {
  const { captions, images, imDiv, noiseRatio } = opts;
  if (!(noiseRatio >= 0 && noiseRatio < 1)) {
    throw new Error(`--noise_ratio must be in [0, 1), got ${noiseRatio}`);
  }
  if (captions !== images * imDiv) {
    throw new Error(`noise index: ${captions} captions do not make ${imDiv} per image for ${images} images`);
  }
  const clean = cleanIndex(captions, imDiv);
  if (noiseRatio === 0) return { t2i: clean, noisy: new Uint8Array(captions), source: "none" };
  if (!opts.noiseFile) throw new Error("--noise_file is required when --noise_ratio > 0 (see defaultNoiseFile)");

  const existing = [opts.noiseFile, opts.noiseFile.endsWith(".npy") ? null : `${opts.noiseFile}.npy`].find((f) => f && existsSync(f));
  if (existing) {
    const t2i = readNoiseFile(existing, captions, images);
    return { t2i, noisy: noisyMask(t2i, clean), source: "file", file: existing };
  }

  const t2i = drawNoise(clean, noiseRatio, new Random(opts.seed ?? NOISE_DEFAULTS.seed));
  const file = opts.noiseFile.endsWith(".npy") ? opts.noiseFile : `${opts.noiseFile}.npy`;
  saveNoiseFile(file, t2i);
  return { t2i, noisy: noisyMask(t2i, clean), source: "generated", file };
}

/**
 * PrecompDataset's draw: permute the caption ids, take the first floor(r·N), and shuffle their image
 * indices among them. Some of the moved captions land on their own image again (as in the
 * official draw), so slightly fewer than r·N pairs end up mismatched.
 */
export function drawNoise(clean: Int32Array, noiseRatio: number, rng: Random): Int32Array {
  const t2i = Int32Array.from(clean);
  const idx = rng.permutation(t2i.length);
  const noiseLength = Math.floor(noiseRatio * t2i.length);
  const moved = idx.subarray(0, noiseLength);
  const shuffled = Int32Array.from(moved, (i) => t2i[i]);
  rng.shuffle(shuffled);
  for (let k = 0; k < noiseLength; k++) t2i[moved[k]] = shuffled[k];
  return t2i;
}

/** Reads a noise index: a 1-D integer `.npy`, one image index per training caption. */
export function readNoiseFile(file: string, captions: number, images: number): Int32Array {
  const arr = readNpy(new Uint8Array(readFileSync(file)), file);
  if (arr.shape.length !== 1) {
    throw new FormatError(file, `noise index must be 1-D (one image index per caption), found shape (${arr.shape.join(", ")})`);
  }
  if (arr.shape[0] !== captions) {
    throw new FormatError(file, `noise index has ${arr.shape[0]} entries but the training split has ${captions} captions`);
  }
  const idx = toIndexArray(arr, file);
  for (let i = 0; i < idx.length; i++) {
    if (!(idx[i] >= 0 && idx[i] < images)) {
      throw new FormatError(file, `entry ${i} is image index ${idx[i]}, outside [0, ${images}) (the training split has ${images} images)`);
    }
  }
  return idx instanceof Int32Array ? idx : Int32Array.from(idx);
}

/** Writes int64 like np.save, through a temporary name so that a crash leaves no partial file. */
export function saveNoiseFile(file: string, t2i: Int32Array): void {
  mkdirSync(dirname(file), { recursive: true });
  const tmp = `${file}.${process.pid}.tmp`;
  writeFileSync(tmp, writeNpy({ dtype: "int64", shape: [t2i.length], data: BigInt64Array.from(t2i, (v) => BigInt(v)) }));
  renameSync(tmp, file);
}

function noisyMask(t2i: Int32Array, clean: Int32Array): Uint8Array {
  const m = new Uint8Array(t2i.length);
  for (let i = 0; i < t2i.length; i++) m[i] = t2i[i] !== clean[i] ? 1 : 0;
  return m;
}

/**
 * run.py's default `--noise_file`: `<output_dir>/<data_name>_<noise_ratio>.npy`, the ratio written
 * as Python's str(float) writes it (0.4 → "0.4", 0 → "0.0", 1e-05 → "1e-05").
 */
export function defaultNoiseFile(outputDir: string, dataName: string, noiseRatio: number): string {
  return join(outputDir, `${dataName}_${pythonFloatStr(noiseRatio)}.npy`);
}

/**
 * run.py's override for datasets whose noise is natural (cc152k_precomp, now100k_precomp):
 * noise_ratio 0 and no noise file.
 */
export function effectiveNoise(dataName: string, noiseRatio: number, noiseFile: string): { noiseRatio: number; noiseFile: string } {
  return hasNaturalNoise(dataName) ? { noiseRatio: 0, noiseFile: "" } : { noiseRatio, noiseFile };
}

/** Python's `repr(float)` / `str(float)`: the shortest round-trip digits, Python's layout. */
export function pythonFloatStr(x: number): string {
  if (Number.isNaN(x)) return "nan";
  if (!Number.isFinite(x)) return x > 0 ? "inf" : "-inf";
  if (x === 0) return Object.is(x, -0) ? "-0.0" : "0.0";
  const [mant, expText] = x.toExponential().split("e");
  const exp = Number(expText);
  const sign = mant.startsWith("-") ? "-" : "";
  const digits = mant.replace("-", "").replace(".", "");
  if (exp < -4 || exp >= 16) {
    const m = digits.length > 1 ? `${digits[0]}.${digits.slice(1)}` : digits;
    const e = Math.abs(exp).toString().padStart(2, "0");
    return `${sign}${m}e${exp < 0 ? "-" : "+"}${e}`;
  }
  if (exp < 0) return `${sign}0.${"0".repeat(-exp - 1)}${digits}`;
  const intPart = digits.slice(0, exp + 1).padEnd(exp + 1, "0");
  const frac = digits.slice(exp + 1);
  return `${sign}${intPart}.${frac || "0"}`;
}
