/**
 * Test double: a deterministic RetrievalEngine with no model behind it. Scores are simple
 * functions of the query so tests can predict them; every call is recorded.
 */
import type { EvalOptions, EvalResult, ImageQuery, ModelInfo, RetrievalEngine, SearchOptions, SearchResult, TextQuery } from "../../shared/retrieval/engine.ts";
import { shortlistUsed } from "../../shared/retrieval/shortlist.ts";

export interface FakeEngineOptions {
  images?: number;
  perCaptions?: number;
  withGallery?: boolean;
  regions?: number;
  imgDim?: number;
  vocabSize?: number;
  maxTokens?: number;
  /** Resolves each call after this many macrotask turns (exercises interleaving). */
  yieldTurns?: number;
}

export class FakeEngine implements RetrievalEngine {
  readonly imgDim: number;
  readonly regions: number;
  readonly vocabSize: number;
  readonly maxTokens: number;
  readonly images: number;
  readonly perCaptions: number;
  readonly withGallery: boolean;
  readonly calls: Array<{ verb: string; args: unknown[] }> = [];
  private readonly yieldTurns: number;

  constructor(o: FakeEngineOptions = {}) {
    this.images = o.images ?? 20;
    this.perCaptions = o.perCaptions ?? 5;
    this.withGallery = o.withGallery ?? true;
    this.regions = o.regions ?? 3;
    this.imgDim = o.imgDim ?? 4;
    this.vocabSize = o.vocabSize ?? 50;
    this.maxTokens = o.maxTokens ?? 40;
    this.yieldTurns = o.yieldTurns ?? 0;
  }

  info(): ModelInfo {
    return {
      config: { model: "fake", embed_size: 8 },
      dtype: "float32",
      sha256: "0".repeat(64),
      nets: ["A", "B"],
      gallery: this.withGallery
        ? { images: this.images, captions: this.images * this.perCaptions, perCaptions: this.perCaptions, words: this.images * this.perCaptions * FakeEngine.captionTokens }
        : null,
    };
  }

  /** Length of every gallery caption, tokens. */
  static readonly captionTokens = 10;

  /** The query's "key": sum of token ids, text length, image index or feature sum. */
  static key(q: TextQuery & ImageQuery): number {
    if (q.tokens) return q.tokens.reduce((a, b) => a + b, 0);
    if (q.text !== undefined) return q.text.length;
    if (q.image !== undefined) return q.image;
    return q.features!.reduce((a, b) => a + b, 0);
  }

  /** Score of gallery item i for a query key: highest for i = key mod n. */
  static itemScore(key: number, i: number, n: number): number {
    const d = Math.abs((((Math.round(key) % n) + n) % n) - i);
    return 1 / (1 + d);
  }

  private topK(key: number, n: number, k: number): Array<{ index: number; score: number }> {
    return Array.from({ length: n }, (_, i) => ({ index: i, score: FakeEngine.itemScore(key, i, n) }))
      .sort((a, b) => b.score - a.score || a.index - b.index)
      .slice(0, k);
  }

  private async settle(): Promise<void> {
    for (let i = 0; i < this.yieldTurns; i++) await new Promise((r) => setTimeout(r, 0));
  }

  /** Scores do not depend on the shortlist; the report says what a real engine would have used. */
  async searchImages(q: TextQuery, k: number, options: SearchOptions = {}): Promise<SearchResult> {
    this.calls.push({ verb: "searchImages", args: [q, k, options] });
    await this.settle();
    return { hits: this.topK(FakeEngine.key(q), this.images, k), shortlist: shortlistUsed(options.shortlist ?? "all", this.images, "tranglo") };
  }

  async searchCaptions(q: ImageQuery, k: number, options: SearchOptions = {}): Promise<SearchResult> {
    this.calls.push({ verb: "searchCaptions", args: [q, k, options] });
    await this.settle();
    const n = this.images * this.perCaptions;
    const hits = this.topK(FakeEngine.key(q), n, k).map((h) => ({
      ...h,
      caption: `caption ${h.index}`,
      image: Math.floor(h.index / this.perCaptions),
    }));
    return { hits, shortlist: shortlistUsed(options.shortlist ?? "all", n, "tranglo") };
  }

  async score(pairs: Array<ImageQuery & TextQuery>): Promise<number[]> {
    this.calls.push({ verb: "score", args: [pairs] });
    await this.settle();
    return pairs.map((p) => FakeEngine.key({ image: p.image, features: p.features }) + FakeEngine.key({ text: p.text, tokens: p.tokens }));
  }

  /** Fixed recall; a numeric shortlist adds a lower two-stage recall. */
  async evaluate(options: EvalOptions = {}): Promise<EvalResult> {
    this.calls.push({ verb: "evaluate", args: [options] });
    await this.settle();
    const images = options.limit ?? this.images;
    const m = { r1: 50, r5: 80, r10: 90, medr: 1, meanr: 2.5 };
    const r: EvalResult = { i2t: m, t2i: m, rsum: 2 * (50 + 80 + 90), images, captions: images * this.perCaptions };
    const s = options.shortlist;
    if (s !== undefined && s !== "all" && s !== 0) {
      const t = { r1: 40, r5: 70, r10: 80, medr: 2, meanr: 5 };
      r.twoStage = { shortlist: s, stage: "tranglo", i2t: t, t2i: t, rsum: 2 * (40 + 70 + 80) };
    }
    return r;
  }
}
