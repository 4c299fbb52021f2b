/**
 * A training report as one self-contained HTML document: inline CSS and hand-drawn inline SVG, no
 * scripts, fonts or styles from elsewhere, so it opens offline from the output folder. Pure: the
 * records come in, a string goes out (the trainer writes the file).
 *
 * Every string that comes from the records or the configuration is escaped; every coordinate is
 * computed from finite values only, so degenerate runs (no records, one epoch, empty histograms,
 * a zero-variance mixture component, unknown noise) still render.
 */
import {
  LOSS_TERMS,
  type LossTerm,
  NETS,
  type Net,
  type RecallMetrics,
  SPLIT_BY,
  type MetricsRecord,
  type SplitBy,
  type SplitRecord,
  type StepRecord,
  type TestRecord,
  type ValidationRecord,
} from "../metrics";
import { type Axis, epochAxis, niceAxis, type Scale, scale } from "./axis";
import { configValue, duration, epochName, esc, fix } from "./format";
import { gauss, posteriorCrossings } from "./mixture";
import { bestValidation, latestSplits, latestValidations } from "./records";
import { CSS } from "./style";
import { axes, chart, dashAttr, emptyNote, type Frame, type LegendItem, legend, linePath, type Marker, marker, num, plotBackground, svgDoc } from "./svg";

export interface ReportMeta {
  title: string;
  /** The resolved configuration, shown collapsed; `p_threshold` (when a number) places the split boundary. */
  config: Record<string, unknown>;
  /** Shown in the header; now, as an ISO string, when absent. */
  generatedAt?: string;
}

/** Renders the report of a run from its `metrics.jsonl` records. */
export function renderReport(records: MetricsRecord[], meta: ReportMeta): string {
  const steps: StepRecord[] = [];
  const splits: SplitRecord[] = [];
  const validations: ValidationRecord[] = [];
  const tests: TestRecord[] = [];
  const epochs: Extract<MetricsRecord, { type: "epoch" }>[] = [];
  const events: Extract<MetricsRecord, { type: "event" }>[] = [];
  for (const r of records) {
    switch (r.type) {
      case "step":
        steps.push(r);
        break;
      case "split":
        splits.push(r);
        break;
      case "validation":
        validations.push(r);
        break;
      case "test":
        tests.push(r);
        break;
      case "epoch":
        epochs.push(r);
        break;
      case "event":
        events.push(r);
        break;
    }
  }
  const threshold = typeof meta.config.p_threshold === "number" && meta.config.p_threshold > 0 && meta.config.p_threshold < 1 ? meta.config.p_threshold : 0.5;
  const vals = latestValidations(validations);
  const generatedAt = meta.generatedAt ?? new Date().toISOString();

  return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${esc(meta.title)}</title>
<style>${CSS}</style>
</head>
<body>
<header>
<h1>${esc(meta.title)}</h1>
<p class="muted">Generated ${esc(generatedAt)} · ${records.length} records</p>
</header>
<main>
${summarySection(vals, tests, epochs, events, meta.config)}
<section id="losses">
<h2>Training losses</h2>
<p class="muted">Running averages over each epoch, logged every <code>log_step</code> batches; x counts the batches each net has trained on.</p>
${lossChart(steps)}
</section>
<section id="validation">
<h2>Validation</h2>
${validationChart(vals)}
${validationTable(vals)}
</section>
<section id="splits">
<h2>Clean/noisy split</h2>
<p class="muted">Precision and recall of the pairs predicted noisy against the known noisy pairs, and the share predicted noisy.</p>
${splitChart(splits)}
</section>
${histogramSections(splits, threshold)}
</main>
</body>
</html>
`;
}

// ---------------------------------------------------------------------------------------------
// Page sections

function summarySection(
  vals: ValidationRecord[],
  tests: TestRecord[],
  epochs: Extract<MetricsRecord, { type: "epoch" }>[],
  events: Extract<MetricsRecord, { type: "event" }>[],
  config: Record<string, unknown>,
): string {
  const best = bestValidation(vals);
  const last = vals.length > 0 ? vals[vals.length - 1] : undefined;
  const seconds = (phase: "warmup" | "train") => epochs.filter((e) => e.phase === phase).reduce((s, e) => s + e.seconds, 0);
  const bestTests = best ? tests.filter((t) => t.epoch === best.epoch) : [];
  const warmupEpochs = epochs.filter((e) => e.phase === "warmup").length;
  const trainEpochs = epochs.filter((e) => e.phase === "train").length;
  const rows: [string, string][] = [
    ["Best validation", best ? `rsum <b>${fix(best.rsum, 1)}</b> at ${epochName(best.epoch)}` : "none yet"],
    ["Last validation", last ? `rsum ${fix(last.rsum, 1)} at ${epochName(last.epoch)}` : "none yet"],
    ["Test at the best", bestTests.length ? bestTests.map((t) => `rsum <b>${fix(t.rsum, 1)}</b> on ${esc(t.split)}${t.fold5 ? " (5-fold)" : ""}`).join(", ") : "none"],
    ["Epochs done", `${warmupEpochs} warmup (${duration(seconds("warmup"))}), ${trainEpochs} co-training (${duration(seconds("train"))})`],
  ];
  const testRows = tests.length === 0
    ? `<p class="muted">No test results.</p>`
    : `<table id="table-tests">
<thead><tr><th>Epoch</th><th>Split</th><th>i2t R@1</th><th>R@5</th><th>R@10</th><th>medr</th><th>meanr</th><th>t2i R@1</th><th>R@5</th><th>R@10</th><th>medr</th><th>meanr</th><th>rsum</th></tr></thead>
<tbody>
${tests.map((t) => `<tr${best && t.epoch === best.epoch ? ` class="best"` : ""}><td>${esc(epochName(t.epoch))}</td><td>${esc(t.split)}${t.fold5 ? " (5-fold)" : ""}</td>${recallCells(t.i2t, true)}${recallCells(t.t2i, true)}<td><b>${fix(t.rsum, 1)}</b></td></tr>`).join("\n")}
</tbody>
</table>`;
  const eventList = events.length === 0 ? "" : `<h3>Events</h3>
<ul id="events">
${events.map((e) => `<li>${e.time !== undefined && Number.isFinite(e.time) ? `<span class="muted">${esc(new Date(e.time * 1000).toISOString())}</span> ` : ""}${esc(e.message)}</li>`).join("\n")}
</ul>`;
  const epochTable = epochs.length === 0 ? "" : `<details>
<summary>Epoch times (${epochs.length})</summary>
<table id="table-epochs">
<thead><tr><th>Phase</th><th>Epoch</th><th>Time</th><th>Learning rate</th></tr></thead>
<tbody>
${epochs.map((e) => `<tr><td>${esc(e.phase)}</td><td>${e.epoch}</td><td>${duration(e.seconds)}</td><td>${e.lr === null ? "–" : esc(String(e.lr))}</td></tr>`).join("\n")}
</tbody>
</table>
</details>`;
  const configRows = Object.entries(config)
    .map(([k, value]) => `<tr><th>${esc(k)}</th><td><code>${esc(configValue(value))}</code></td></tr>`)
    .join("\n");
  return `<section id="summary">
<h2>Summary</h2>
<table id="table-summary" class="kv">
<tbody>
${rows.map(([k, value]) => `<tr><th>${k}</th><td>${value}</td></tr>`).join("\n")}
</tbody>
</table>
<h3>Test</h3>
${testRows}
${eventList}
${epochTable}
<details id="config">
<summary>Configuration (${Object.keys(config).length} settings)</summary>
<table class="kv">
<tbody>
${configRows}
</tbody>
</table>
</details>
</section>`;
}

function validationTable(vals: ValidationRecord[]): string {
  if (vals.length === 0) return `<p class="muted">No validation results.</p>`;
  const best = bestValidation(vals);
  return `<table id="table-validation">
<thead><tr><th>Epoch</th><th>i2t R@1</th><th>R@5</th><th>R@10</th><th>t2i R@1</th><th>R@5</th><th>R@10</th><th>rsum</th></tr></thead>
<tbody>
${vals.map((r) => `<tr${r === best ? ` class="best"` : ""}><td>${esc(epochName(r.epoch))}</td>${recallCells(r.i2t, false)}${recallCells(r.t2i, false)}<td>${r === best ? `<b>${fix(r.rsum, 1)}</b>` : fix(r.rsum, 1)}${r.best ? " ★" : ""}</td></tr>`).join("\n")}
</tbody>
</table>
<p class="muted">★ improved on the best so far (a test followed); the highlighted row is the best checkpoint kept.</p>`;
}

function recallCells(m: RecallMetrics, ranks: boolean): string {
  const cells = [m.r1, m.r5, m.r10, ...(ranks ? [m.medr, m.meanr] : [])];
  return cells.map((x) => `<td>${fix(x, 1)}</td>`).join("");
}

// ---------------------------------------------------------------------------------------------
// Record selection

// ---------------------------------------------------------------------------------------------
// Charts

const LOSS_COLORS: Record<LossTerm, string> = {
  triplet_loss: "#2f6fb0",
  ce_loss_img: "#d9822b",
  ce_loss_cap: "#3a9a5b",
  neg_en_loss_img: "#c44e52",
  neg_en_loss_cap: "#8064a2",
  triplet_loss_u: "#8c6d31",
};
const NET_DASH: Record<Net, string | undefined> = { A: undefined, B: "6 4" };
const NET_COLORS: Record<Net, string> = { A: "#2f6fb0", B: "#d9822b" };
const BY_DASH: Record<SplitBy, string | undefined> = { loss: undefined, po: "6 4" };
const BY_MARKER: Record<SplitBy, Marker> = { loss: "dot", po: "square" };
const BY_NAME: Record<SplitBy, string> = { loss: "per-sample loss", po: "PO consistency" };
/** Most points drawn per line; a long run is thinned evenly (its last point always kept). */
const MAX_LINE_POINTS = 1500;

/** Loss curves: x counts the batches a net has trained on, across warmup then co-training. */
function lossChart(steps: StepRecord[]): string {
  const phaseIndex = { warmup: 0, train: 1 } as const;
  type Pt = [number, number | null];
  const series: { term: LossTerm; net: Net; points: Pt[] }[] = [];
  let xMax = 0;
  let warmupEnd = 0;
  for (const net of NETS) {
    const mine = steps.filter((s) => s.net === net);
    if (mine.length === 0) continue;
    // Batches per (phase, epoch): the epoch's `steps` as recorded, so an epoch cut short by an
    // interruption still takes its place and the following epochs line up.
    const segments = new Map<string, { order: number; steps: number }>();
    for (const s of mine) {
      const key = `${s.phase}/${s.epoch}`;
      const seg = segments.get(key);
      const order = phaseIndex[s.phase] * 1e9 + s.epoch;
      segments.set(key, { order, steps: Math.max(seg?.steps ?? 0, s.steps) });
    }
    const offsets = new Map<string, number>();
    let total = 0;
    for (const [key, seg] of [...segments.entries()].sort((a, b) => a[1].order - b[1].order)) {
      offsets.set(key, total);
      total += seg.steps;
      if (key.startsWith("warmup/")) warmupEnd = Math.max(warmupEnd, total);
    }
    const xs = new Map<number, StepRecord>();
    for (const s of mine) xs.set((offsets.get(`${s.phase}/${s.epoch}`) ?? 0) + s.step + 1, s);
    const ordered = [...xs.entries()].sort((a, b) => a[0] - b[0]);
    for (const [x] of ordered) xMax = Math.max(xMax, x);
    for (const term of LOSS_TERMS) {
      const points: Pt[] = ordered.map(([x, s]) => {
        const value = s[term];
        return [x, typeof value === "number" && Number.isFinite(value) ? value : null];
      });
      if (points.some((p) => p[1] !== null)) series.push({ term, net, points: thin(points) });
    }
  }
  const ys = series.flatMap((s) => s.points.map((p) => p[1]).filter((y): y is number => y !== null));
  const x = niceAxis(0, Math.max(xMax, 1), "batches trained (cumulative per net)", { integer: true });
  const y = niceAxis(ys.length ? Math.min(...ys) : 0, ys.length ? Math.max(...ys) : 1, "loss (running average)");
  const terms = LOSS_TERMS.filter((t) => series.some((s) => s.term === t));
  const nets = NETS.filter((n) => series.some((s) => s.net === n));
  const legendItems: LegendItem[] = [
    ...terms.map((t): LegendItem => ({ label: t, color: LOSS_COLORS[t], kind: "line" })),
    ...nets.map((n): LegendItem => ({ label: `net ${n}`, color: "#555", kind: "line", dash: NET_DASH[n] })),
    ...(warmupEnd > 0 ? [{ label: "warmup", color: "#e3e8f0", kind: "box" } satisfies LegendItem] : []),
  ];
  return chart({
    id: "chart-loss",
    title: "Training loss terms per net over training progress",
    width: 860,
    plotHeight: 300,
    x,
    y,
    legend: legendItems,
    empty: series.length === 0 ? "No step records yet." : undefined,
    underlay: (sx, _sy, f) => {
      if (warmupEnd <= 0) return "";
      const x1 = sx(Math.min(warmupEnd, x.hi));
      return `<rect class="phase" x="${num(f.left)}" y="${num(f.top)}" width="${num(x1 - f.left)}" height="${num(f.height)}" fill="#e3e8f0"/>
<line x1="${num(x1)}" y1="${num(f.top)}" x2="${num(x1)}" y2="${num(f.top + f.height)}" stroke="#8a94a6" stroke-dasharray="4 3"/>
${x1 - f.left > 60 ? `<text x="${num(f.left + 4)}" y="${num(f.top + 12)}" class="note">warmup</text>` : ""}
<text x="${num(x1 + 4)}" y="${num(f.top + 12)}" class="note">co-training</text>`;
    },
    body: (sx, sy) =>
      series
        .map((s) => `<path class="series" d="${linePath(s.points.map(([px, py]) => (py === null ? null : [sx(px), sy(py)])))}" fill="none" stroke="${LOSS_COLORS[s.term]}" stroke-width="1.5"${dashAttr(NET_DASH[s.net])}><title>${esc(`${s.term}, net ${s.net}`)}</title></path>`)
        .join("\n"),
  });
}

/** Validation rsum per epoch: the warmup validation apart, the kept best ringed. */
function validationChart(vals: ValidationRecord[]): string {
  const warm = vals.find((r) => r.epoch === "warmup");
  const co = vals.filter((r): r is ValidationRecord & { epoch: number } => r.epoch !== "warmup" && Number.isFinite(r.rsum));
  const best = bestValidation(vals);
  const first = co.length ? co[0].epoch : 0;
  const warmX = first - 1;
  const last = co.length ? co[co.length - 1].epoch : warm ? warmX : 0;
  const xOf = (r: ValidationRecord) => (r.epoch === "warmup" ? warmX : r.epoch);
  const lo = warm ? warmX : first;
  const x: Axis = epochAxis(lo, last, "epoch", warm ? warmX : undefined);
  const rs = vals.map((r) => r.rsum).filter(Number.isFinite);
  const y = niceAxis(rs.length ? Math.min(...rs) : 0, rs.length ? Math.max(...rs) : 1, "rsum (R@1+5+10, both directions)");
  const legendItems: LegendItem[] = [
    { label: "co-training epoch", color: "#2f6fb0", kind: "dot", fill: "#fff" },
    { label: "improved the best", color: "#2f6fb0", kind: "dot" },
    ...(warm ? [{ label: "after warmup", color: "#6b7280", kind: "diamond" } satisfies LegendItem] : []),
    ...(best ? [{ label: "best kept", color: "#c98a00", kind: "ring" } satisfies LegendItem] : []),
  ];
  return chart({
    id: "chart-validation",
    title: "Validation rsum per epoch",
    width: 860,
    plotHeight: 260,
    x,
    y,
    legend: legendItems,
    empty: vals.length === 0 ? "No validation records yet." : undefined,
    underlay: (sx, _sy, f) => {
      if (!warm || co.length === 0) return "";
      const xs = sx(warmX + 0.5);
      return `<line x1="${num(xs)}" y1="${num(f.top)}" x2="${num(xs)}" y2="${num(f.top + f.height)}" stroke="#8a94a6" stroke-dasharray="4 3"/>`;
    },
    body: (sx, sy) => {
      const parts: string[] = [];
      parts.push(`<path class="series" d="${linePath(co.map((r) => [sx(r.epoch), sy(r.rsum)]))}" fill="none" stroke="#2f6fb0" stroke-width="2"/>`);
      for (const r of co) parts.push(marker("dot", sx(r.epoch), sy(r.rsum), "#2f6fb0", r.best ? "#2f6fb0" : "#fff", `${epochName(r.epoch)}: rsum ${fix(r.rsum, 1)}`));
      if (warm && Number.isFinite(warm.rsum)) parts.push(marker("diamond", sx(warmX), sy(warm.rsum), "#6b7280", "#6b7280", `warmup: rsum ${fix(warm.rsum, 1)}`));
      if (best && Number.isFinite(best.rsum)) {
        const bx = sx(xOf(best));
        const by = sy(best.rsum);
        parts.push(marker("ring", bx, by, "#c98a00", "none", `best kept: ${epochName(best.epoch)}, rsum ${fix(best.rsum, 1)}`));
        parts.push(`<text x="${num(bx)}" y="${num(by - 12)}" class="note" text-anchor="middle">best ${fix(best.rsum, 1)}</text>`);
      }
      return parts.join("\n");
    },
  });
}

/** Split precision, recall and selected share per co-training epoch, in three panels. */
function splitChart(allSplits: SplitRecord[]): string {
  const splits = latestSplits(allSplits);
  const epochs = splits.map((s) => s.epoch);
  const lo = epochs.length ? Math.min(...epochs) : 0;
  const hi = epochs.length ? Math.max(...epochs) : 0;
  const x = epochAxis(lo, hi, "epoch");
  const y = niceAxis(0, 1, "share");
  const keys = NETS.flatMap((net) => SPLIT_BY.map((by) => ({ net, by }))).filter((k) => splits.some((s) => s.net === k.net && s.by === k.by));
  const panels: { name: string; value: (s: SplitRecord) => number | null }[] = [
    { name: "precision", value: (s) => s.precision },
    { name: "recall", value: (s) => s.recall },
    { name: "share predicted noisy", value: (s) => (s.size > 0 ? s.selected_noisy / s.size : null) },
  ];
  const width = 900;
  const panelWidth = (width - 16) / panels.length;
  const plotHeight = 200;
  const legendItems: LegendItem[] = keys.map(({ net, by }) => ({ label: `net ${net}, ${by} split`, color: NET_COLORS[net], kind: "line", dash: BY_DASH[by], marker: BY_MARKER[by] }));
  if (splits.some((s) => s.forced)) legendItems.push({ label: "forced (1/100 rule)", color: "#c44e52", kind: "cross" });
  const leg = legend(legendItems, 12, 0, width - 24);
  const frameTop = 28;
  const height = frameTop + plotHeight + 48 + leg.height + 8;
  const body: string[] = [];
  panels.forEach((p, i) => {
    const f: Frame = { left: 16 + i * panelWidth + 44, top: frameTop, width: panelWidth - 60, height: plotHeight };
    const sx = scale(x, f.left, f.left + f.width);
    const sy = scale(y, f.top + f.height, f.top);
    body.push(`<text x="${num(f.left + f.width / 2)}" y="16" class="panel-title" text-anchor="middle">${esc(p.name)}</text>`);
    body.push(plotBackground(f));
    body.push(axes(f, x, y, sx, sy));
    const known = splits.some((s) => p.value(s) !== null);
    if (splits.length === 0) body.push(emptyNote(f, "No split records yet."));
    else if (!known) body.push(emptyNote(f, "Noise unknown for this dataset."));
    for (const { net, by } of keys) {
      const pts = splits
        .filter((s) => s.net === net && s.by === by)
        .sort((a, b) => a.epoch - b.epoch)
        .map((s) => ({ s, v: p.value(s) }))
        .filter((q): q is { s: SplitRecord; v: number } => q.v !== null && Number.isFinite(q.v));
      if (pts.length === 0) continue;
      body.push(`<path class="series" d="${linePath(pts.map((q) => [sx(q.s.epoch), sy(q.v)]))}" fill="none" stroke="${NET_COLORS[net]}" stroke-width="1.5"${dashAttr(BY_DASH[by])}/>`);
      for (const q of pts) {
        const tip = `epoch ${q.s.epoch}, net ${net}, ${by} split: ${p.name} ${fix(q.v, 3)}${q.s.forced ? " (forced)" : ""}`;
        body.push(marker(BY_MARKER[by], sx(q.s.epoch), sy(q.v), NET_COLORS[net], NET_COLORS[net], tip));
        if (q.s.forced) body.push(marker("cross", sx(q.s.epoch), sy(q.v), "#c44e52", "none", tip));
      }
    }
  });
  body.push(`<g transform="translate(0 ${num(frameTop + plotHeight + 48)})">${leg.svg}</g>`);
  return svgDoc("chart-split", "Split precision, recall and share predicted noisy per epoch (nets A and B, loss and PO splits)", width, height, body.join("\n"));
}

/** One small multiple per (epoch, net, by): the histogram by noise label with the fitted mixture over it. */
function histogramSections(allSplits: SplitRecord[], threshold: number): string {
  const splits = latestSplits(allSplits);
  return SPLIT_BY.map((by) => {
    const mine = splits.filter((s) => s.by === by);
    const epochs = [...new Set(mine.map((s) => s.epoch))].sort((a, b) => a - b);
    const rows = epochs.map((e) => {
      const cells = NETS.map((net) => mine.find((s) => s.epoch === e && s.net === net))
        .map((s) => (s ? histogramChart(s, threshold) : `<div class="missing muted">no split</div>`))
        .join("\n");
      return `<div class="hist-row">${cells}</div>`;
    });
    const what = by === "loss" ? "per-sample loss" : "PO consistency (KL divergence between the current prediction and its bank)";
    return `<section id="hist-${by}">
<h2>Split by ${esc(BY_NAME[by])}</h2>
<p class="muted">Histograms of the min-max normalised ${what}, clean and noisy pairs stacked, with the fitted two-component Gaussian mixture (dashed: components; the lower-mean one is the clean one) and where its clean posterior crosses p = ${fix(threshold, 2)}.</p>
${rows.length ? `<details open><summary>${rows.length} epoch${rows.length === 1 ? "" : "s"}</summary>\n<div class="hist-grid">\n${rows.join("\n")}\n</div>\n</details>` : `<p class="muted">No ${by} split records yet.</p>`}
</section>`;
  }).join("\n");
}

function histogramChart(s: SplitRecord, threshold: number): string {
  const { bins } = s.hist;
  const clean = s.hist.clean;
  const noisy = s.hist.noisy;
  const totals = clean.map((c, i) => c + (noisy ? noisy[i] : 0));
  const n = totals.reduce((a, b) => a + b, 0);
  const binWidth = 1 / bins;
  // Mixture density in counts per bin, so it sits on the bars: n · binWidth · Σ w·N(x; μ, σ²).
  const comps = [0, 1].map((k) => ({ mean: s.gmm.means[k], variance: s.gmm.variances[k], weight: s.gmm.weights[k] }));
  const cleanK = comps[1].mean < comps[0].mean ? 1 : 0;
  const SAMPLES = 201;
  const xs = Array.from({ length: SAMPLES }, (_, i) => i / (SAMPLES - 1));
  const compCurves = comps.map((c) => xs.map((x) => n * binWidth * c.weight * gauss(x, c.mean, c.variance)));
  const mixture = xs.map((_, i) => compCurves[0][i] + compCurves[1][i]);
  const barMax = Math.max(0, ...totals);
  const curveMax = Math.max(0, ...mixture.filter(Number.isFinite));
  // A narrow component peaks far above the bars; the axis follows the bars and the curve is clipped.
  const top = barMax > 0 ? Math.max(barMax, Math.min(curveMax, barMax * 1.5)) : curveMax > 0 ? curveMax : 1;
  const x = niceAxis(0, 1, s.by === "loss" ? "normalised loss" : "normalised PO consistency");
  const y = niceAxis(0, top, "pairs", { integer: top >= 5, from0: true });
  const crossings = s.forced ? [] : posteriorCrossings(comps, cleanK, threshold);
  const id = `hist-${s.by}-e${s.epoch}-${s.net}`;
  const known = noisy !== null;
  const legendItems: LegendItem[] = [
    ...(known
      ? [{ label: "clean", color: "#7aa6d6", kind: "box" } satisfies LegendItem, { label: "noisy", color: "#f0a35e", kind: "box" } satisfies LegendItem]
      : [{ label: "all pairs", color: "#9aa7b8", kind: "box" } satisfies LegendItem]),
    { label: "GMM", color: "#222", kind: "line" },
    { label: "clean comp.", color: "#2f6fb0", kind: "line", dash: "4 3" },
    { label: "noisy comp.", color: "#c44e52", kind: "line", dash: "4 3" },
  ];
  const pr = s.precision !== null && s.recall !== null ? ` · P ${fix(s.precision, 2)} R ${fix(s.recall, 2)}` : "";
  const subtitle = `noisy ${s.selected_noisy}/${s.size}${pr}${s.forced ? " · forced" : ""}`;
  const title = `Epoch ${s.epoch}, net ${s.net}: ${BY_NAME[s.by]} histogram with fitted GMM (${subtitle})`;
  return chart({
    id,
    className: "chart hist",
    title,
    heading: `epoch ${s.epoch} · net ${s.net}`,
    subheading: subtitle,
    width: 420,
    plotHeight: 150,
    x,
    y,
    legend: legendItems,
    empty: n === 0 ? "Empty histogram." : undefined,
    body: (sx, sy, f) => {
      const parts: string[] = [];
      const y0 = sy(0);
      for (let i = 0; i < bins; i++) {
        const x0 = sx(i * binWidth);
        const w = Math.max(0, sx((i + 1) * binWidth) - x0 - 0.5);
        const c = clean[i];
        const z = noisy ? noisy[i] : 0;
        const hc = y0 - sy(Math.min(c, y.hi));
        const hz = y0 - sy(Math.min(c + z, y.hi)) - hc;
        const range = `[${fix(i * binWidth, 2)}, ${fix((i + 1) * binWidth, 2)})`;
        if (c > 0) parts.push(`<rect x="${num(x0)}" y="${num(y0 - hc)}" width="${num(w)}" height="${num(hc)}" fill="${known ? "#7aa6d6" : "#9aa7b8"}"><title>${range}: ${c} ${known ? "clean" : "pairs"}</title></rect>`);
        if (z > 0) parts.push(`<rect x="${num(x0)}" y="${num(y0 - hc - hz)}" width="${num(w)}" height="${num(hz)}" fill="#f0a35e"><title>${range}: ${z} noisy</title></rect>`);
      }
      const curve = (ys: number[]) => linePath(xs.map((px, i) => (Number.isFinite(ys[i]) ? [sx(px), sy(Math.min(ys[i], y.hi))] : null)));
      parts.push(`<path class="gmm-component" d="${curve(compCurves[cleanK])}" fill="none" stroke="#2f6fb0" stroke-width="1.2" stroke-dasharray="4 3"/>`);
      parts.push(`<path class="gmm-component" d="${curve(compCurves[1 - cleanK])}" fill="none" stroke="#c44e52" stroke-width="1.2" stroke-dasharray="4 3"/>`);
      parts.push(`<path class="gmm" d="${curve(mixture)}" fill="none" stroke="#222" stroke-width="1.6"><title>${esc(gmmText(s))}</title></path>`);
      for (const c of crossings) {
        const cx = sx(c);
        parts.push(`<line class="boundary" x1="${num(cx)}" y1="${num(f.top)}" x2="${num(cx)}" y2="${num(f.top + f.height)}" stroke="#555" stroke-dasharray="1 3"><title>clean posterior = ${fix(threshold, 2)} at x = ${fix(c, 3)}</title></line>`);
      }
      return parts.join("\n");
    },
  });
}

function gmmText(s: SplitRecord): string {
  const { means, variances, weights } = s.gmm;
  return [0, 1].map((k) => `w ${fix(weights[k], 3)} μ ${fix(means[k], 3)} σ² ${fix(variances[k], 4)}`).join("; ");
}

// ---------------------------------------------------------------------------------------------
// SVG toolkit

function thin<T>(points: T[]): T[] {
  if (points.length <= MAX_LINE_POINTS) return points;
  const stride = Math.ceil(points.length / MAX_LINE_POINTS);
  const out = points.filter((_, i) => i % stride === 0);
  if ((points.length - 1) % stride !== 0) out.push(points[points.length - 1]);
  return out;
}

// ---------------------------------------------------------------------------------------------
// Text
