/**
 * The gallery's region store on disk: the per-item encodings that only the full model's scoring
 * needs (region embeddings and VisualSA vectors of images, word embeddings and TextSA vectors of
 * captions) are written in shards of a fixed number of images (a caption shard holds the captions
 * of those images), one file per net, side and shard, each listed with its size and SHA-256 in
 * model.json's `files` like every file of the package. model.json's `gallery.regions` describes
 * them; the engine reads only the shards of the items it scores (shared/retrieval/region-store.ts).
 *
 *   regions-<net>-images-NNNN.bin    items × [36 × E region embeddings] then items × [E] pooled
 *   regions-<net>-captions-NNNN.bin  Σ words × [E] word embeddings then captions × [E] pooled
 *
 * Little-endian float16 (or float32: the gallery's dtype, package.ts galleryDtype). A package
 * written before the region store keeps every encoding in gallery-NN.bin, decoded at load; it is
 * still read (package.ts).
 *
 * Runtime-free.
 */
import * as v from "valibot";
import { FormatError, floatToHalf, halfToFloat } from "../formats/ndarray";
import { REGIONS } from "./config";
import type { EncodedCaptions, EncodedImages } from "./inference";

/** Images per shard of a new export (and the captions of as many images). */
export const REGION_SHARD_ITEMS = 8;

export const RegionLayoutSchema = v.object({
  dtype: v.picklist(["float32", "float16"]),
  /** Images per shard; a caption shard holds the captions of as many images. The last shard may hold fewer. */
  imagesPerShard: v.pipe(v.number(), v.integer(), v.minValue(1)),
  /** Per net name, its image and caption shards in gallery order. */
  nets: v.record(v.string(), v.object({ images: v.array(v.string()), captions: v.array(v.string()) })),
});
export type RegionLayout = v.InferOutput<typeof RegionLayoutSchema>;
export type RegionDtype = RegionLayout["dtype"];
export type RegionSide = "images" | "captions";

export function regionShardName(net: string, side: RegionSide, shard: number): string {
  return `regions-${net}-${side}-${String(shard).padStart(4, "0")}.bin`;
}

export function shardCount(images: number, imagesPerShard: number): number {
  return Math.ceil(images / imagesPerShard);
}

/** The layout of a gallery's shards (names only). */
export function regionLayout(netNames: readonly string[], images: number, imagesPerShard: number, dtype: RegionDtype): RegionLayout {
  const n = shardCount(images, imagesPerShard);
  const nets: RegionLayout["nets"] = {};
  for (const net of netNames) {
    nets[net] = {
      images: Array.from({ length: n }, (_, s) => regionShardName(net, "images", s)),
      captions: Array.from({ length: n }, (_, s) => regionShardName(net, "captions", s)),
    };
  }
  return { dtype, imagesPerShard, nets };
}

/** A shard's bytes: `emb` then `glo`, in the layout's dtype. */
export function encodeRegionShard(emb: Float32Array, glo: Float32Array, dtype: RegionDtype): Uint8Array {
  const n = emb.length + glo.length;
  if (dtype === "float32") {
    const out = new Float32Array(n);
    out.set(emb);
    out.set(glo, emb.length);
    return new Uint8Array(out.buffer);
  }
  const out = new Uint16Array(n);
  for (let i = 0; i < emb.length; i++) out[i] = floatToHalf(emb[i]);
  for (let i = 0; i < glo.length; i++) out[emb.length + i] = floatToHalf(glo[i]);
  return new Uint8Array(out.buffer);
}

let halfTable: Float32Array | null = null;
/** float16 bits → float32, all 65,536 of them (256 KB, built on first use). */
function halves(): Float32Array {
  if (halfTable === null) {
    halfTable = new Float32Array(65536);
    for (let h = 0; h < 65536; h++) halfTable[h] = halfToFloat(h);
  }
  return halfTable;
}

/** A shard's values, readable element by element without decoding the whole shard. */
export interface ShardValues {
  /** Copies elements [from, from + count) into `out` at `at`, as float32. */
  copy(from: number, count: number, out: Float32Array, at: number): void;
  length: number;
}

export function shardValues(bytes: Uint8Array, dtype: RegionDtype): ShardValues {
  const size = dtype === "float16" ? 2 : 4;
  // Typed views need aligned offsets; a source may hand out a view into a larger buffer.
  const aligned = bytes.byteOffset % size === 0 ? bytes : bytes.slice();
  if (dtype === "float32") {
    const f = new Float32Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 4);
    return { length: f.length, copy: (from, count, out, at) => out.set(f.subarray(from, from + count), at) };
  }
  const h = new Uint16Array(aligned.buffer, aligned.byteOffset, aligned.byteLength / 2);
  const table = halves();
  return {
    length: h.length,
    copy(from, count, out, at) {
      for (let i = 0; i < count; i++) out[at + i] = table[h[from + i]];
    },
  };
}

/** What the shards of a gallery hold, from its counts: enough to find any item's values. */
export interface RegionGeometry {
  images: number;
  perCaptions: number;
  imagesPerShard: number;
  embed: number;
  /** Per caption, its words (resident: the gallery's token lists). */
  lengths: Int32Array;
  /** Per caption, its first word in the whole gallery. */
  offsets: Int32Array;
}

/** Items [first, end) of shard `s` of a side. */
export function shardItems(geo: RegionGeometry, side: RegionSide, s: number): [number, number] {
  const per = side === "images" ? geo.imagesPerShard : geo.imagesPerShard * geo.perCaptions;
  const total = side === "images" ? geo.images : geo.images * geo.perCaptions;
  return [s * per, Math.min(total, (s + 1) * per)];
}

/** Words of captions [c0, c1). */
export function captionWords(geo: RegionGeometry, c0: number, c1: number): number {
  return c1 > c0 ? geo.offsets[c1 - 1] + geo.lengths[c1 - 1] - geo.offsets[c0] : 0;
}

/** Elements a shard holds (emb then glo). */
export function shardElements(geo: RegionGeometry, side: RegionSide, s: number): number {
  const [a, b] = shardItems(geo, side, s);
  const E = geo.embed;
  return side === "images" ? (b - a) * (REGIONS + 1) * E : (captionWords(geo, a, b) + (b - a)) * E;
}

export function dtypeBytes(dtype: RegionDtype): number {
  return dtype === "float16" ? 2 : 4;
}

/**
 * Checks a layout read from model.json against the gallery's counts and file list: one entry per
 * net, as many shards as the counts imply, each listed in `files` with the size its items imply.
 * Nothing is read: a shard's content is verified when it is read (size and SHA-256).
 */
export function checkRegionLayout(layout: RegionLayout, nets: readonly string[], geo: RegionGeometry, files: Record<string, { bytes: number }>, where: string): void {
  const names = Object.keys(layout.nets);
  if (names.length !== nets.length || nets.some((n) => !layout.nets[n])) {
    throw new FormatError(where, `gallery.regions describes nets ${names.join(",")}, the model has ${nets.join(",")}`);
  }
  const n = shardCount(geo.images, layout.imagesPerShard);
  for (const net of nets) {
    for (const side of ["images", "captions"] as const) {
      const list = layout.nets[net][side];
      if (list.length !== n) throw new FormatError(where, `gallery.regions: net ${net} has ${list.length} ${side} shards, ${geo.images} images in shards of ${layout.imagesPerShard} make ${n}`);
      list.forEach((name, s) => {
        const info = files[name];
        if (!info) throw new FormatError(where, `gallery.regions refers to ${name}, which its file list lacks`);
        const want = shardElements(geo, side, s) * dtypeBytes(layout.dtype);
        if (info.bytes !== want) throw new FormatError(where, `${name} is listed with ${info.bytes} bytes; the gallery's counts imply ${want}`);
      });
    }
  }
}

/** A gallery's region shards as a package holds them: read on demand. */
export interface StoredRegions {
  layout: RegionLayout;
  geometry: RegionGeometry;
  /** Net names in the package's order (the engine's net k is `nets[k]`). */
  nets: readonly string[];
  /**
   * A shard's bytes from the package's source, verified against model.json (size and SHA-256)
   * on every call; throws an error naming the file when it is missing or does not match.
   */
  read(name: string): Promise<Uint8Array>;
}

/** Writes a gallery's region shards into `files`; returns their layout. */
export function writeRegionShards(
  g: { perCaptions: number; images: EncodedImages[]; captions: EncodedCaptions[] },
  netNames: readonly string[],
  imagesPerShard: number,
  dtype: RegionDtype,
  files: Map<string, Uint8Array>,
): RegionLayout {
  if (!Number.isInteger(imagesPerShard) || imagesPerShard < 1) throw new RangeError(`region shards: imagesPerShard must be a positive integer, not ${imagesPerShard}`);
  const images = g.images[0].count;
  const layout = regionLayout(netNames, images, imagesPerShard, dtype);
  const c = g.captions[0];
  const geo: RegionGeometry = { images, perCaptions: g.perCaptions, imagesPerShard, embed: g.images[0].embed, lengths: c.lengths, offsets: c.offsets };
  const E = geo.embed;
  netNames.forEach((net, k) => {
    const im = g.images[k];
    const cap = g.captions[k];
    for (let s = 0; s < shardCount(images, imagesPerShard); s++) {
      const [i0, i1] = shardItems(geo, "images", s);
      files.set(layout.nets[net].images[s], encodeRegionShard(im.emb.subarray(i0 * REGIONS * E, i1 * REGIONS * E), im.glo.subarray(i0 * E, i1 * E), dtype));
      const [c0, c1] = shardItems(geo, "captions", s);
      const w0 = cap.offsets[c0];
      files.set(layout.nets[net].captions[s], encodeRegionShard(cap.emb.subarray(w0 * E, (w0 + captionWords(geo, c0, c1)) * E), cap.glo.subarray(c0 * E, c1 * E), dtype));
    }
  });
  return layout;
}
