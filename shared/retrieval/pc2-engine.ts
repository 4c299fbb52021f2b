/**
 * The retrieval engine of an exported PC2 model: SGRAF nets on tfjs (wasm at the edge) and a
 * gallery of precomputed image-side and caption-side encodings. Text is tokenized by the
 * package's tokenizer (NLTK word_tokenize of the lower-cased text for the official vocabularies;
 * Jieba or a tokenizer.json for NoW: text-query.ts) and mapped through its vocabulary; scores of the two nets are averaged, as the official evaluation does.
 *
 * It reads results back from the backend asynchronously only (inference.ts's `…Async`), so that
 * the same engine runs on WebGPU in the browser (edge/browser/) as on wasm at the edge.
 */
import { evaluateRecall } from "../eval/metrics";
import { REGIONS } from "../model/config";
import { type EncodedCaptions, type EncodedImages, encodeCaptionsAsync, encodeImagesAsync, ensembleSimilarityAsync, selectImages, sliceCaptions } from "../model/inference";
import { type ModelPackage, decodeModelPackage, MODEL_JSON } from "../model/package";
import type { TextTokenizerOptions } from "../text/text-tokenizer";
import type { AssetSource } from "./assets.ts";
import { QueryText } from "./text-query.ts";
import { MAX_QUERY_TOKENS, type EngineLoader, type EvalResult, type Hit, type ImageQuery, type ModelInfo, type RetrievalEngine, type TextQuery } from "./engine.ts";

export class Pc2Engine implements RetrievalEngine {
  readonly imgDim: number;
  readonly regions = REGIONS;
  readonly vocabSize: number;
  readonly maxTokens = MAX_QUERY_TOKENS;
  private readonly text: QueryText;

  constructor(
    readonly pkg: ModelPackage,
    options: TextTokenizerOptions = {},
  ) {
    this.imgDim = pkg.config.img_dim;
    this.vocabSize = pkg.config.vocab_size;
    this.text = new QueryText(pkg, options);
  }

  info(): ModelInfo {
    const g = this.pkg.gallery;
    return {
      config: { ...this.pkg.config },
      dtype: this.pkg.dtype,
      sha256: this.pkg.sha256,
      nets: this.pkg.netNames,
      gallery: g ? { images: g.images[0].count, captions: g.captions[0].count, perCaptions: g.perCaptions } : null,
      text: this.text.info(),
    };
  }

  /** Token ids of a query: `<start>` words `<end>`, as the official data.py builds captions. */
  async tokens(q: TextQuery): Promise<Int32Array> {
    if (q.tokens) return Int32Array.from(q.tokens);
    // Only the engine knows how many tokens a text makes; ids sent as `tokens` are checked by the caller.
    return this.text.ids(q.text ?? "", this.maxTokens);
  }

  private gallery() {
    const g = this.pkg.gallery;
    if (!g) throw new Error("Pc2Engine: this model has no gallery (the caller checks info().gallery first)");
    return g;
  }

  /** Averaged similarity of the nets between images and captions given per net. */
  private sims(images: (k: number) => EncodedImages, captions: (k: number) => EncodedCaptions): Promise<Float32Array> {
    return ensembleSimilarityAsync(this.pkg.nets, images, captions);
  }

  /** The query caption encoded by every net. */
  private encodeQueryCaption(tokens: Int32Array): Promise<EncodedCaptions[]> {
    return sequential(this.pkg.nets, (net) => encodeCaptionsAsync(net, tokens, Int32Array.of(tokens.length)));
  }

  /** The query image encoded by every net (a gallery image is already encoded). */
  private encodeQueryImage(q: ImageQuery): Promise<EncodedImages[]> {
    if (q.features) return sequential(this.pkg.nets, (net) => encodeImagesAsync(net, q.features!, 1));
    return Promise.resolve(this.gallery().images.map((g) => selectImages(g, [q.image!])));
  }

  async searchImages(q: TextQuery, k: number): Promise<Hit[]> {
    const g = this.gallery();
    const caps = await this.encodeQueryCaption(await this.tokens(q));
    const s = await this.sims((n) => g.images[n], (n) => caps[n]);
    return topK(s, k).map(([index, score]) => ({ index, score, image: index }));
  }

  async searchCaptions(q: ImageQuery, k: number): Promise<Hit[]> {
    const g = this.gallery();
    const imgs = await this.encodeQueryImage(q);
    const s = await this.sims((n) => imgs[n], (n) => g.captions[n]);
    return topK(s, k).map(([index, score]) => ({ index, score, caption: g.texts[index] ?? undefined, image: Math.floor(index / g.perCaptions) }));
  }

  async score(pairs: Array<ImageQuery & TextQuery>): Promise<number[]> {
    const scores: number[] = [];
    for (const pair of pairs) {
      const tokens = await this.tokens(pair);
      const [imgs, caps] = [await this.encodeQueryImage(pair), await this.encodeQueryCaption(tokens)];
      scores.push((await this.sims((n) => imgs[n], (n) => caps[n]))[0]);
    }
    return scores;
  }

  async evaluate(limit?: number): Promise<EvalResult> {
    const g = this.gallery();
    const nImages = Math.min(limit ?? g.images[0].count, g.images[0].count);
    const nCaptions = nImages * g.perCaptions;
    const idx = Int32Array.from({ length: nImages }, (_, i) => i);
    const s = await this.sims(
      (n) => (nImages === g.images[n].count ? g.images[n] : selectImages(g.images[n], idx)),
      (n) => (nCaptions === g.captions[n].count ? g.captions[n] : sliceCaptions(g.captions[n], 0, nCaptions)),
    );
    const r = evaluateRecall(s, nImages, g.perCaptions);
    return { i2t: r.i2t, t2i: r.t2i, rsum: r.rsum, images: nImages, captions: nCaptions };
  }

  dispose(): void {
    for (const p of this.pkg.nets) p.dispose();
  }
}

/** `run` on each item, one after the other (the backend computes one thing at a time anyway). */
async function sequential<T, R>(items: readonly T[], run: (item: T) => Promise<R>): Promise<R[]> {
  const out: R[] = [];
  for (const item of items) out.push(await run(item));
  return out;
}

/** Indices of the k largest values, best first (ties: lower index first). */
export function topK(values: Float32Array, k: number): Array<[number, number]> {
  const idx = Array.from({ length: values.length }, (_, i) => i);
  idx.sort((a, b) => values[b] - values[a] || a - b);
  return idx.slice(0, k).map((i) => [i, values[i]]);
}

/** Reads an exported model directory through any AssetSource. */
export async function loadPackage(assets: AssetSource, source = "model"): Promise<ModelPackage> {
  const json = await assets.get(MODEL_JSON);
  if (json === null) throw new Error(`the model has no ${MODEL_JSON}; is this a model directory?`);
  return decodeModelPackage(
    json,
    async (name) => {
      const b = await assets.get(name);
      if (b === null) throw new Error(`${source}/${name}: missing file of the exported model`);
      return b;
    },
    source,
  );
}

export const loadPc2Engine: EngineLoader = async (assets) => new Pc2Engine(await loadPackage(assets));
