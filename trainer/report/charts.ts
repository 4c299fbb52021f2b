/**
 * The report's charts, each built from the records it plots: training losses per net, validation
 * rsum per epoch, split quality per epoch, and one histogram per split with the fitted mixture over
 * it. Every chart is an inline `<svg>` whose `<title>` says what it shows.
 */
import {
  LOSS_TERMS,
  type LossTerm,
  NETS,
  type Net,
  SPLIT_BY,
  type SplitBy,
  type SplitRecord,
  type StepRecord,
  type ValidationRecord,
} from "../metrics";
import { cleanComponent } from "../../shared/eval/gmm";
import { type Axis, epochAxis, niceAxis, scale } from "./axis";
import { epochName, esc, fix } from "./format";
import { gauss, posteriorCrossings } from "./mixture";
import { bestValidation, latestSplits } from "./records";
import { axes, chart, dashAttr, emptyNote, type Frame, type LegendItem, legend, linePath, type Marker, marker, num, plotBackground, svgDoc } from "./svg";

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
export const BY_NAME: Record<SplitBy, string> = { loss: "per-sample loss", po: "PO consistency" };
/** Most points drawn per line; a long run is thinned evenly (its last point always kept). */
const MAX_LINE_POINTS = 1500;

/** Loss curves: x counts the batches a net has trained on, across warmup then co-training. */
export function lossChart(steps: StepRecord[]): string {
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
${phaseBoundary(f, x1)}
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
export function validationChart(vals: ValidationRecord[]): string {
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
      return phaseBoundary(f, xs);
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

/** The dashed line where warmup ends and co-training starts, in the loss and validation charts alike. */
function phaseBoundary(f: Frame, x: number): string {
  return `<line x1="${num(x)}" y1="${num(f.top)}" x2="${num(x)}" y2="${num(f.top + f.height)}" stroke="#8a94a6" stroke-dasharray="4 3"/>`;
}

/** Split precision, recall and selected share per co-training epoch, in three panels. */
export function splitChart(allSplits: SplitRecord[]): string {
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

export function histogramChart(s: SplitRecord, threshold: number): string {
  const { bins } = s.hist;
  const clean = s.hist.clean;
  const noisy = s.hist.noisy;
  const totals = clean.map((c, i) => c + (noisy ? noisy[i] : 0));
  const n = totals.reduce((a, b) => a + b, 0);
  const binWidth = 1 / bins;
  // Mixture density in counts per bin, so it sits on the bars: n · binWidth · Σ w·N(x; μ, σ²).
  const comps = [0, 1].map((k) => ({ mean: s.gmm.means[k], variance: s.gmm.variances[k], weight: s.gmm.weights[k] }));
  const cleanK = cleanComponent(s.gmm);
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

function thin<T>(points: T[]): T[] {
  if (points.length <= MAX_LINE_POINTS) return points;
  const stride = Math.ceil(points.length / MAX_LINE_POINTS);
  const out = points.filter((_, i) => i % stride === 0);
  if ((points.length - 1) % stride !== 0) out.push(points[points.length - 1]);
  return out;
}
