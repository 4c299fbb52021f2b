/**
 * The gallery's per-item encodings as the engine reads them (region and word embeddings, and the
 * pooled vectors the full model scores with): resident for a gallery built in memory or read from
 * a package written before the region store, or read on demand from a package's region shards
 * (shared/model/region-shards.ts) through its AssetSource.
 *
 * A sharded gallery keeps only its first-stage vectors, texts and tokens in memory. A search
 * reads the shards holding its shortlisted items; an exhaustive search or an evaluation walks the
 * gallery in blocks of whole shards, so that at most a block of encodings is decoded at once.
 * Shards read are kept, as stored (float16), in a least-recently-used cache under a byte budget
 * (Pc2EngineOptions.regionCacheBytes); every read from the source is verified against
 * model.json (size and SHA-256), and a missing or corrupt shard is an EngineStorageError naming
 * the file.
 */
import { REGIONS } from "../model/config";
import { type EncodedCaptions, type EncodedImages, selectCaptions, selectImages, sliceCaptions, wordOffsets } from "../model/inference";
import type { Gallery } from "../model/package";
import { captionWords, type RegionSide, shardItems, shardValues, type StoredRegions } from "../model/region-shards";
import { EngineStorageError } from "./engine.ts";

/**
 * Default byte budget of the shard cache: a 1,000-image paper-size gallery of two nets (147 MB of
 * float16 shards) stays whole in it. With 64 MB every k′ = 128 search re-read and re-verified
 * about 180 shards (106 MB): p50 354 ms against 265 ms (benchmarks/gallery_scale.ts, quiet).
 * A server short of memory passes less (`bun run edge --region-cache-mb`; a Worker: 16 MB).
 */
export const REGION_CACHE_BYTES = 256 * 2 ** 20;

/** The shard cache of a Workers isolate (128 MB for everything). */
export const WORKER_REGION_CACHE_BYTES = 16 * 2 ** 20;
/** Shards read from the source at once by one request. */
const READS_IN_FLIGHT = 4;

export interface RegionStats {
  /** Bytes of the gallery's encodings held in memory for good (a resident gallery's; 0 for a sharded one). */
  resident: number;
  /** Bytes of shards in the cache now, and its budget (0 for a resident gallery). */
  cached: number;
  budget: number;
  /** Shards read from the source (each verified), and requests the cache answered. */
  reads: number;
  hits: number;
}

export interface GalleryRegions {
  /**
   * Ranges covering items [start, end) of a side, in order, for computations that stream over
   * the gallery: whole shards, at least `items` items per range where the shards allow (one range
   * for a resident gallery).
   */
  blocks(side: RegionSide, start: number, end: number, items: number): Array<[number, number]>;
  /** Net k's encodings of gallery images `indices` (any order, repeats allowed), in that order. */
  images(net: number, indices: ArrayLike<number>): Promise<EncodedImages>;
  captions(net: number, indices: ArrayLike<number>): Promise<EncodedCaptions>;
  /** Net k's encodings of images [start, end). */
  imageRange(net: number, start: number, end: number): Promise<EncodedImages>;
  captionRange(net: number, start: number, end: number): Promise<EncodedCaptions>;
  stats(): RegionStats;
}

/** The region access of a gallery: its shards when it has a region store, its arrays otherwise. */
export function galleryRegions(g: Gallery, budgetBytes = REGION_CACHE_BYTES): GalleryRegions {
  return g.regions ? new ShardedRegions(g.regions, budgetBytes) : new ResidentRegions(g);
}

const range = (start: number, end: number) => Int32Array.from({ length: end - start }, (_, i) => start + i);

class ResidentRegions implements GalleryRegions {
  constructor(private readonly g: Gallery) {}

  blocks(_side: RegionSide, start: number, end: number): Array<[number, number]> {
    return end > start ? [[start, end]] : [];
  }

  async images(net: number, indices: ArrayLike<number>): Promise<EncodedImages> {
    return selectImages(this.g.images[net], indices);
  }

  async captions(net: number, indices: ArrayLike<number>): Promise<EncodedCaptions> {
    return selectCaptions(this.g.captions[net], indices);
  }

  async imageRange(net: number, start: number, end: number): Promise<EncodedImages> {
    const im = this.g.images[net];
    return start === 0 && end === im.count ? im : selectImages(im, range(start, end));
  }

  async captionRange(net: number, start: number, end: number): Promise<EncodedCaptions> {
    const c = this.g.captions[net];
    return start === 0 && end === c.count ? c : sliceCaptions(c, start, end);
  }

  stats(): RegionStats {
    const bytes = (xs: Array<{ emb: Float32Array; glo: Float32Array }>) => xs.reduce((s, x) => s + x.emb.byteLength + x.glo.byteLength, 0);
    return { resident: bytes(this.g.images) + bytes(this.g.captions), cached: 0, budget: 0, reads: 0, hits: 0 };
  }
}

export class ShardedRegions implements GalleryRegions {
  /** Shard bytes by file name, least recently used first. */
  private readonly cache = new Map<string, Uint8Array>();
  private readonly inFlight = new Map<string, Promise<Uint8Array>>();
  private cachedBytes = 0;
  private reads = 0;
  private hits = 0;

  constructor(
    private readonly store: StoredRegions,
    private readonly budgetBytes: number,
  ) {
    if (!(budgetBytes >= 0)) throw new RangeError(`region cache: the budget must be a non-negative number of bytes, not ${budgetBytes}`);
  }

  private perShard(side: RegionSide): number {
    const geo = this.store.geometry;
    return side === "images" ? geo.imagesPerShard : geo.imagesPerShard * geo.perCaptions;
  }

  blocks(side: RegionSide, start: number, end: number, items: number): Array<[number, number]> {
    const per = this.perShard(side);
    const step = per * Math.max(1, Math.floor(items / per));
    const out: Array<[number, number]> = [];
    for (let b = start; b < end; ) {
      const next = Math.min(end, (Math.floor(b / step) + 1) * step);
      out.push([b, next]);
      b = next;
    }
    return out;
  }

  stats(): RegionStats {
    return { resident: 0, cached: this.cachedBytes, budget: this.budgetBytes, reads: this.reads, hits: this.hits };
  }

  /** A shard's stored bytes: from the cache, or read (and verified) from the source. */
  private shard(name: string): Promise<Uint8Array> {
    const hit = this.cache.get(name);
    if (hit) {
      this.hits++;
      this.cache.delete(name);
      this.cache.set(name, hit);
      return Promise.resolve(hit);
    }
    let pending = this.inFlight.get(name);
    if (!pending) {
      pending = (async () => {
        try {
          const bytes = await this.store.read(name);
          this.reads++;
          this.admit(name, bytes);
          return bytes;
        } catch (e) {
          throw new EngineStorageError(`the gallery's region shard ${name} could not be read: ${(e as Error).message}`);
        } finally {
          this.inFlight.delete(name);
        }
      })();
      this.inFlight.set(name, pending);
    }
    return pending;
  }

  /** Keeps a shard read, evicting the least recently used ones over the budget; one larger than the budget is not kept. */
  private admit(name: string, bytes: Uint8Array): void {
    if (bytes.byteLength > this.budgetBytes || this.cache.has(name)) return;
    for (const [old, b] of this.cache) {
      if (this.cachedBytes + bytes.byteLength <= this.budgetBytes) break;
      this.cache.delete(old);
      this.cachedBytes -= b.byteLength;
    }
    this.cache.set(name, bytes);
    this.cachedBytes += bytes.byteLength;
  }

  /** Runs `use` on each shard holding one of `indices`, a few reads in flight at a time. */
  private async eachShard(net: number, side: RegionSide, indices: ArrayLike<number>, use: (values: ReturnType<typeof shardValues>, first: number, end: number, positions: number[]) => void): Promise<void> {
    const per = this.perShard(side);
    const byShard = new Map<number, number[]>();
    for (let i = 0; i < indices.length; i++) {
      const s = Math.floor(indices[i] / per);
      const list = byShard.get(s);
      if (list) list.push(i);
      else byShard.set(s, [i]);
    }
    const names = this.store.layout.nets[this.store.nets[net]][side];
    const shards = [...byShard.keys()];
    let next = 0;
    const worker = async () => {
      while (next < shards.length) {
        const s = shards[next++];
        const bytes = await this.shard(names[s]);
        const [first, end] = shardItems(this.store.geometry, side, s);
        use(shardValues(bytes, this.store.layout.dtype), first, end, byShard.get(s)!);
      }
    };
    await Promise.all(Array.from({ length: Math.min(READS_IN_FLIGHT, shards.length) }, worker));
  }

  async images(net: number, indices: ArrayLike<number>): Promise<EncodedImages> {
    const E = this.store.geometry.embed;
    const n = indices.length;
    const size = REGIONS * E;
    const emb = new Float32Array(n * size);
    const glo = new Float32Array(n * E);
    await this.eachShard(net, "images", indices, (values, first, end, positions) => {
      const gloAt = (end - first) * size;
      for (const i of positions) {
        const local = indices[i] - first;
        values.copy(local * size, size, emb, i * size);
        values.copy(gloAt + local * E, E, glo, i * E);
      }
    });
    return { count: n, embed: E, emb, glo };
  }

  async captions(net: number, indices: ArrayLike<number>): Promise<EncodedCaptions> {
    const geo = this.store.geometry;
    const E = geo.embed;
    const n = indices.length;
    const lengths = Int32Array.from({ length: n }, (_, i) => geo.lengths[indices[i]]);
    const { offsets, words } = wordOffsets(lengths);
    const emb = new Float32Array(words * E);
    const glo = new Float32Array(n * E);
    await this.eachShard(net, "captions", indices, (values, first, end, positions) => {
      const gloAt = captionWords(geo, first, end) * E;
      for (const i of positions) {
        const c = indices[i];
        values.copy((geo.offsets[c] - geo.offsets[first]) * E, lengths[i] * E, emb, offsets[i] * E);
        values.copy(gloAt + (c - first) * E, E, glo, i * E);
      }
    });
    return { count: n, embed: E, lengths, offsets, emb, glo };
  }

  imageRange(net: number, start: number, end: number): Promise<EncodedImages> {
    return this.images(net, range(start, end));
  }

  captionRange(net: number, start: number, end: number): Promise<EncodedCaptions> {
    return this.captions(net, range(start, end));
  }
}

/**
 * The gallery with every encoding in memory (its region shards read, each verified, and
 * decoded): for tools and tests on small galleries that use the arrays directly. A resident
 * gallery is returned as it is.
 */
export async function residentGallery(g: Gallery): Promise<Gallery> {
  if (!g.regions) return g;
  const store = new ShardedRegions(g.regions, 0);
  const { images, perCaptions } = g.regions.geometry;
  const nets = g.regions.nets.map((_, k) => k);
  return {
    ...g,
    images: await Promise.all(nets.map((k) => store.imageRange(k, 0, images))),
    captions: await Promise.all(nets.map((k) => store.captionRange(k, 0, images * perCaptions))),
    regions: undefined,
  };
}
