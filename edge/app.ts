/**
 * The edge HTTP app: JSON in and out, every request body a valibot schema (edge/schemas.ts) that
 * also feeds /openapi.json. It knows no runtime: adapters (edge/bun.ts, edge/worker.ts) hand it
 * an engine, or a loader that it calls once, on the first request that needs the model.
 *
 * Errors take one shape, `{error: {status, message}}`, made in one place (`onError`): handlers
 * and middleware throw `HTTPException`; anything else is a bug, logged and answered 500.
 *
 * Besides the JSON API it serves, read-only and only when the adapter hands them over, the
 * exported model's files (`/model/<file>`) and the browser page that runs the same engine
 * client-side (`/app`, edge/browser/); edge/static-files.ts keeps both to their allowlists.
 */
import { Hono, type Context } from "hono";
import { bodyLimit } from "hono/body-limit";
import { HTTPException } from "hono/http-exception";
import type { ContentfulStatusCode } from "hono/utils/http-status";
import { describeRoute, openAPIRouteHandler, resolver, validator } from "hono-openapi";
import { toJsonSchema } from "@valibot/to-json-schema";
import type * as v from "valibot";
import type { AssetSource } from "../shared/retrieval/assets.ts";
import { EngineInputError, EngineStorageError, EngineUnsupportedError, type ImageQuery, type RetrievalEngine, type SearchResult, type TextQuery } from "../shared/retrieval/engine.ts";
import { namesNoShortlist, type Shortlist } from "../shared/retrieval/shortlist.ts";
import { evalCells, maxEvalImages, scoreCells, searchCaptionsCells, searchImagesCells, textTokensBound } from "../shared/retrieval/cost.ts";
import { admission } from "./admission.ts";
import { BROWSER_FILES } from "./browser/files.ts";
import { browserFiles, modelFiles } from "./static-files.ts";
import { DEFAULT_EDGE_LIMITS, type EdgeLimits, type EngineState, requestSchemas, responseSchemas } from "./schemas.ts";

export interface EdgeAppOptions {
  /** A ready engine, or … */
  engine?: RetrievalEngine;
  /** … a loader, called on the first request that needs the model; its result is kept. */
  loadEngine?: () => Promise<RetrievalEngine>;
  limits?: Partial<EdgeLimits>;
  /** The exported model's files, served read-only under /model/ (the browser page loads them). */
  modelAssets?: AssetSource;
  /** The browser page's files (edge/browser/build.ts), served under /app; without them /app is 404. */
  browserAssets?: AssetSource;
  /** Where bugs and engine failures are reported; console.error by default. */
  log?: (message: string, error: unknown) => void;
}

export function createApp(options: EdgeAppOptions): Hono {
  if ((options.engine === undefined) === (options.loadEngine === undefined)) {
    throw new Error("createApp: give exactly one of engine or loadEngine");
  }
  const limits: EdgeLimits = { ...DEFAULT_EDGE_LIMITS, ...options.limits };
  checkShortlistLimits(limits);
  const log = options.log ?? ((message, error) => console.error(message, error));
  const engine = engineSlot(options, log);
  const schemas = requestSchemas(limits);
  const gate = admission(limits);
  const app = new Hono();

  app.onError((error, c) => {
    if (error instanceof HTTPException) {
      const res = errorResponse(c, error.status, error.message);
      // Every 503 (busy, or the model not loaded yet) is worth retrying soon.
      if (error.status === 503) res.headers.set("Retry-After", String(RETRY_AFTER_S));
      return res;
    }
    log(`edge: ${c.req.method} ${c.req.path} failed`, error);
    return errorResponse(c, 500, "internal error");
  });
  app.notFound((c) => errorResponse(c, 404, `no route ${c.req.method} ${c.req.path}`));

  app.use("/v1/*", jsonBodiesOnly);
  app.use(
    "/v1/*",
    bodyLimit({
      maxSize: limits.bodyLimit,
      onError: () => {
        throw new HTTPException(413, { message: `request body is larger than ${limits.bodyLimit} bytes` });
      },
    }),
  );

  app.use("/v1/*", emptyBodyIsEmptyObject);

  app.get(
    "/health",
    describeRoute({ summary: "Liveness, and whether the model is loaded", tags: ["meta"], responses: ok(responseSchemas.health) }),
    (c) => c.json({ status: "ok" as const, engine: engine.state() }),
  );

  app.get(
    "/v1/model",
    describeRoute({ summary: "The loaded model", tags: ["model"], responses: ok(responseSchemas.model) }),
    async (c) => {
      const e = await engine.get();
      return c.json({ ...e.info(), imgDim: e.imgDim, regions: e.regions, vocabSize: e.vocabSize, maxTokens: e.maxTokens });
    },
  );

  /** Engine work, once its estimated cost is within the limit and the gate admits it. */
  const work = <T>(kind: "eval" | "other", cells: number, reduce: string, call: (signal: AbortSignal) => Promise<T>): Promise<T> => {
    if (cells > limits.maxWork) {
      throw new HTTPException(422, { message: `this request is about ${Math.ceil(cells)} cells of work, over the server's limit of ${limits.maxWork} (maxWork): ${reduce}` });
    }
    return engineCall(() => gate.run(kind, call));
  };

  // The two searches: validate, require a gallery, check the query against the model, search.
  const search = <S extends v.GenericSchema<unknown, { k: number; shortlist: Shortlist }>>(path: string, summary: string, schema: S, run: (e: RetrievalEngine, body: v.InferOutput<S>, signal: AbortSignal) => Promise<SearchResult>, cells: (e: RetrievalEngine, body: v.InferOutput<S>) => number) =>
    app.post(
      path,
      describeRoute({ summary, tags: ["search"], responses: ok(responseSchemas.results) }),
      validator("json", schema, failOnIssues),
      async (c) => {
        const body = c.req.valid("json") as v.InferOutput<S>;
        const e = await engine.get();
        requireGallery(e);
        const reduce = `the gallery is too large for one search within this limit; send a shorter query${namesNoShortlist(body.shortlist) ? ", a shortlist (two-stage search)" : ", a smaller shortlist"} or raise --max-work`;
        const { hits, shortlist } = await work("other", cells(e, body), reduce, (signal) => run(e, body, signal));
        return c.json({ results: hits, shortlist });
      },
    );
  search(
    "/v1/search/images",
    "Text → image search over the gallery",
    schemas.searchImages,
    (e, body, signal) => e.searchImages(textQuery(e, body, ""), body.k, { shortlist: body.shortlist }, signal),
    (e, body) => searchImagesCells(queryTokens(e, body), requireGallery(e), e.regions, body.shortlist),
  );
  search(
    "/v1/search/captions",
    "Image → text search over the gallery captions",
    schemas.searchCaptions,
    (e, body, signal) => e.searchCaptions(imageQuery(e, body, ""), body.k, { shortlist: body.shortlist }, signal),
    (e, body) => searchCaptionsCells(requireGallery(e), e.regions, body.shortlist),
  );

  app.post(
    "/v1/score",
    describeRoute({ summary: "Similarity of image-text pairs", tags: ["search"], responses: ok(responseSchemas.scores) }),
    validator("json", schemas.score, failOnIssues),
    async (c) => {
      const { pairs } = c.req.valid("json");
      const e = await engine.get();
      const queries = pairs.map((p, i) => ({ ...imageQuery(e, p, `pairs[${i}].`), ...textQuery(e, p, `pairs[${i}].`) }));
      const cells = scoreCells(queries.map((q) => queryTokens(e, q)), e.regions);
      const most = Math.floor(limits.maxWork / (cells / pairs.length));
      const reduce = most >= 1 ? `ask for at most ${most} pairs like these` : "send shorter captions";
      const scores = await work("other", cells, reduce, (signal) => e.score(queries, signal));
      return c.json({ scores });
    },
  );

  app.post(
    "/v1/eval",
    describeRoute({ summary: "Official i2t/t2i recall on the gallery", tags: ["model"], responses: ok(responseSchemas.evaluate) }),
    validator("json", schemas.evaluate, failOnIssues),
    async (c) => {
      const { limit, shortlist } = c.req.valid("json");
      const e = await engine.get();
      const gallery = requireGallery(e);
      if (limit !== undefined && limit > gallery.images) {
        throw badRequest(`limit: ${limit} is more than the gallery's ${gallery.images} images`);
      }
      const images = limit ?? gallery.images;
      const most = maxEvalImages(limits.maxWork, gallery, e.regions, shortlist);
      const reduce = most >= 1 ? `pass limit ≤ ${most} images` : "this gallery's captions are too long to evaluate within this limit";
      return c.json(await work("eval", evalCells(images, gallery, e.regions, shortlist), reduce, (signal) => e.evaluate({ limit, shortlist }, signal)));
    },
  );

  // Static files: not part of the JSON API, so not in its document.
  const serveModel = options.modelAssets ? modelFiles(options.modelAssets) : null;
  app.get("/model/:file", describeRoute({ hide: true }), (c) => {
    if (serveModel === null) throw new HTTPException(404, { message: "this server does not serve its model files" });
    return serveModel(c.req.raw, c.req.param("file"));
  });
  const servePage = options.browserAssets ? browserFiles(options.browserAssets) : null;
  const page = (c: Context, name: string) => {
    if (servePage === null) throw new HTTPException(404, { message: "the browser page is not built into this server" });
    return servePage(c.req.raw, name);
  };
  app.get("/app", describeRoute({ hide: true }), (c) => page(c, BROWSER_FILES.page));
  // The page names its files relative to /app ("app/main.js", "model/"), which a page served at
  // /app/ or /app/index.html would resolve elsewhere: those go to /app.
  const toPage = (c: Context) => c.redirect(`/app${new URL(c.req.url).search}`, 301);
  app.get("/app/", describeRoute({ hide: true }), toPage);
  app.get("/app/:file", describeRoute({ hide: true }), (c) => (c.req.param("file") === BROWSER_FILES.page ? toPage(c) : page(c, c.req.param("file"))));

  app.get(
    "/openapi.json",
    openAPIRouteHandler(app, {
      documentation: {
        info: {
          title: "PC2 edge retrieval API",
          version: "1",
          description: "Image-text retrieval with a PC2-trained SGRAF model.",
        },
      },
      defaultValidationErrorResponse: {
        description: "Invalid request; the message names the field",
        content: { "application/json": { schema: errorJsonSchema() } },
      },
    }),
  );
  return app;
}

/** The server's shortlist limits are a configuration: a bad one fails at start, naming the option. */
function checkShortlistLimits(limits: EdgeLimits): void {
  const { maxShortlist: max, defaultShortlist: d } = limits;
  if (!Number.isInteger(max) || max < 0) throw new RangeError(`createApp: maxShortlist must be a non-negative integer, not ${max}`);
  if (d !== "all" && !(Number.isInteger(d) && d >= 0 && d <= max)) {
    throw new RangeError(`createApp: defaultShortlist must be "all" or an integer in [0, ${max}] (maxShortlist), not ${JSON.stringify(d)}`);
  }
}

// --- engine slot ---------------------------------------------------------------------------

function engineSlot(options: EdgeAppOptions, log: (m: string, e: unknown) => void) {
  let state: EngineState = options.engine ? "loaded" : "idle";
  let pending: Promise<RetrievalEngine> | null = options.engine ? Promise.resolve(options.engine) : null;
  return {
    state: () => state,
    get(): Promise<RetrievalEngine> {
      if (pending === null) {
        state = "loading";
        pending = options.loadEngine!().then(
          (e) => {
            state = "loaded";
            return e;
          },
          (error: unknown) => {
            // Forget the failure so that a later request tries again (a transient fetch error).
            state = "failed";
            pending = null;
            log("edge: loading the model failed", error);
            throw new HTTPException(503, { message: "the model could not be loaded; see the server log" });
          },
        );
      }
      return pending;
    },
  };
}

// --- request checks against the model ------------------------------------------------------

function textQuery(e: RetrievalEngine, q: TextQuery, at: string): TextQuery {
  if (q.tokens === undefined) return { text: q.text };
  if (q.tokens.length > e.maxTokens) {
    throw badRequest(`${at}tokens: ${q.tokens.length} ids; the model takes at most ${e.maxTokens}`);
  }
  const bad = q.tokens.findIndex((t) => t >= e.vocabSize);
  if (bad >= 0) {
    throw badRequest(`${at}tokens[${bad}]: ${q.tokens[bad]} is not in [0, ${e.vocabSize}), the model's vocabulary`);
  }
  return { tokens: q.tokens };
}

/** Tokens of a text query, or at most that many for text not tokenized yet (cost.ts). */
function queryTokens(e: RetrievalEngine, q: TextQuery): number {
  return q.tokens?.length ?? textTokensBound(q.text ?? "", e.maxTokens);
}

function imageQuery(e: RetrievalEngine, q: { image?: number; features?: number[][] }, at: string): ImageQuery {
  if (q.features === undefined) {
    const gallery = requireGallery(e);
    if (q.image! >= gallery.images) {
      throw badRequest(`${at}image: ${q.image} is not in [0, ${gallery.images}), the gallery's images`);
    }
    return { image: q.image };
  }
  const rows = q.features;
  if (rows.length !== e.regions) {
    throw badRequest(`${at}features: has ${rows.length} rows; the model takes [${e.regions}][${e.imgDim}]`);
  }
  const flat = new Float32Array(e.regions * e.imgDim);
  rows.forEach((row, r) => {
    if (row.length !== e.imgDim) {
      throw badRequest(`${at}features[${r}]: has ${row.length} values; the model takes [${e.regions}][${e.imgDim}]`);
    }
    flat.set(row, r * e.imgDim);
  });
  return { features: flat };
}

function requireGallery(e: RetrievalEngine) {
  const gallery = e.info().gallery;
  if (gallery === null) {
    throw new HTTPException(409, { message: "this model has no gallery: only /v1/score with features and text works" });
  }
  return gallery;
}

async function engineCall<T>(call: () => Promise<T>): Promise<T> {
  try {
    return await call();
  } catch (error) {
    if (error instanceof EngineInputError) throw badRequest(error.message);
    if (error instanceof EngineUnsupportedError) throw new HTTPException(501, { message: error.message });
    // The model's stored data failed (a missing or corrupt gallery region shard): the file, not "internal error".
    if (error instanceof EngineStorageError) throw new HTTPException(500, { message: error.message });
    throw error;
  }
}

// --- errors --------------------------------------------------------------------------------

const MAX_MESSAGE = 300;
/** Seconds a client is asked to wait before it retries a 503. */
const RETRY_AFTER_S = 1;

function badRequest(message: string): HTTPException {
  return new HTTPException(400, { message });
}

function errorResponse(c: Context, status: number, message: string): Response {
  return c.json({ error: { status, message } }, status as ContentfulStatusCode);
}

/**
 * Content-Type guard for bodies: a request that carries a body must say JSON (415 otherwise);
 * one without a body is parsed as `{}` by the validator.
 */
async function jsonBodiesOnly(c: Context, next: () => Promise<void>): Promise<void> {
  if (c.req.raw.body !== null) {
    const type = (c.req.header("Content-Type") ?? "").split(";")[0]!.trim().toLowerCase();
    if (!/^application\/([\w.-]+\+)?json$/.test(type)) {
      throw new HTTPException(415, { message: `Content-Type must be application/json, not ${JSON.stringify(type.slice(0, 100))}` });
    }
  }
  await next();
}

/**
 * One rule for bodies without content: none at all, or an empty (or blank) body with a JSON
 * content type, both mean `{}`. Runs after the body limit, so the text it reads is bounded.
 */
async function emptyBodyIsEmptyObject(c: Context, next: () => Promise<void>): Promise<void> {
  // Hono keeps the body it read as a promise per kind (its type says string); json() parses the text one.
  if (c.req.raw.body !== null && (await c.req.text()).trim() === "") (c.req.bodyCache as unknown as { text: Promise<string> }).text = Promise.resolve("{}");
  await next();
}

/** Validator hook: the first issue, as `path: message`, in a 400. */
/** A Standard Schema issue, as much of it as is read here. */
interface Issue {
  message: string;
  path?: ReadonlyArray<PropertyKey | { key: PropertyKey }>;
}

function failOnIssues(result: { success: boolean; error?: readonly Issue[] }): void {
  if (result.success) return;
  const issue = result.error?.[0];
  const message = issue ? `${issuePath(issue)}: ${issue.message}` : "invalid request body";
  throw badRequest(message.length > MAX_MESSAGE ? `${message.slice(0, MAX_MESSAGE)}…` : message);
}

function issuePath(issue: Issue): string {
  let out = "";
  for (const segment of issue.path ?? []) {
    const key = typeof segment === "object" ? segment.key : segment;
    if (typeof key === "number") out += `[${key}]`;
    else out += out === "" ? String(key) : `.${String(key)}`;
  }
  return out === "" ? "body" : out;
}

// --- OpenAPI helpers -----------------------------------------------------------------------

function ok(schema: v.GenericSchema) {
  return { 200: { description: "OK", content: { "application/json": { schema: resolver(schema) } } }, default: errorDoc() };
}

function errorDoc() {
  return { description: "Error", content: { "application/json": { schema: resolver(responseSchemas.error) } } };
}

function errorJsonSchema() {
  const { $schema: _, ...schema } = toJsonSchema(responseSchemas.error);
  return schema as Record<string, unknown>;
}
