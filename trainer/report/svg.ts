/**
 * The SVG the charts are drawn with, hand-written so the page needs no script or library: the
 * chart frame (plot area, axes, legend, `<title>` first for screen readers), markers, line paths
 * that break at gaps, and coordinates written to two decimals.
 */
import { type Axis, type Scale, scale } from "./axis";
import { esc } from "./format";

export interface Frame {
  left: number;
  top: number;
  width: number;
  height: number;
}

export type Marker = "dot" | "square" | "diamond" | "ring" | "cross";

export interface LegendItem {
  label: string;
  color: string;
  kind: "line" | "box" | Marker;
  dash?: string;
  fill?: string;
  /** A marker drawn on a line sample. */
  marker?: Marker;
}

interface ChartOptions {
  id: string;
  className?: string;
  title: string;
  /** Visible heading inside the svg (small multiples); the `<title>` is always there. */
  heading?: string;
  subheading?: string;
  width: number;
  plotHeight: number;
  x: Axis;
  y: Axis;
  legend: LegendItem[];
  /** Shown in the plot area when there is nothing to draw. */
  empty?: string;
  underlay?: (sx: Scale, sy: Scale, frame: Frame) => string;
  body: (sx: Scale, sy: Scale, frame: Frame) => string;
}

export function chart(o: ChartOptions): string {
  const left = 56;
  const right = 16;
  const top = o.heading ? (o.subheading ? 40 : 26) : 12;
  const f: Frame = { left, top, width: o.width - left - right, height: o.plotHeight };
  const leg = legend(o.legend, left, 0, f.width);
  const legendTop = top + o.plotHeight + 46;
  const height = legendTop + leg.height + 6;
  const sx = scale(o.x, f.left, f.left + f.width);
  const sy = scale(o.y, f.top + f.height, f.top);
  const parts: string[] = [];
  if (o.heading) parts.push(`<text x="${num(left)}" y="14" class="panel-title">${esc(o.heading)}</text>`);
  if (o.subheading) parts.push(`<text x="${num(left)}" y="30" class="note">${esc(o.subheading)}</text>`);
  parts.push(plotBackground(f));
  if (o.underlay) parts.push(o.underlay(sx, sy, f));
  parts.push(axes(f, o.x, o.y, sx, sy));
  if (o.empty) parts.push(emptyNote(f, o.empty));
  parts.push(o.body(sx, sy, f));
  parts.push(`<g transform="translate(0 ${num(legendTop)})">${leg.svg}</g>`);
  return svgDoc(o.id, o.title, o.width, height, parts.join("\n"), o.className);
}

export function svgDoc(id: string, title: string, width: number, height: number, body: string, className = "chart"): string {
  const tid = `${id}-title`;
  return `<svg id="${esc(id)}" class="${esc(className)}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 ${num(width)} ${num(height)}" role="img" aria-labelledby="${esc(tid)}">
<title id="${esc(tid)}">${esc(title)}</title>
${body}
</svg>`;
}

export function axes(f: Frame, x: Axis, y: Axis, sx: Scale, sy: Scale): string {
  const parts: string[] = [`<g class="axes">`];
  const bottom = f.top + f.height;
  for (const t of y.ticks) {
    const py = sy(t.value);
    parts.push(`<line class="grid" x1="${num(f.left)}" y1="${num(py)}" x2="${num(f.left + f.width)}" y2="${num(py)}"/>`);
    parts.push(`<line class="tick" x1="${num(f.left - 4)}" y1="${num(py)}" x2="${num(f.left)}" y2="${num(py)}"/>`);
    parts.push(`<text class="tick-label" x="${num(f.left - 6)}" y="${num(py + 3.5)}" text-anchor="end">${esc(t.label)}</text>`);
  }
  for (const t of x.ticks) {
    const px = sx(t.value);
    parts.push(`<line class="tick" x1="${num(px)}" y1="${num(bottom)}" x2="${num(px)}" y2="${num(bottom + 4)}"/>`);
    parts.push(`<text class="tick-label" x="${num(px)}" y="${num(bottom + 15)}" text-anchor="middle">${esc(t.label)}</text>`);
  }
  parts.push(`<line class="axis" x1="${num(f.left)}" y1="${num(bottom)}" x2="${num(f.left + f.width)}" y2="${num(bottom)}"/>`);
  parts.push(`<line class="axis" x1="${num(f.left)}" y1="${num(f.top)}" x2="${num(f.left)}" y2="${num(bottom)}"/>`);
  if (x.label) parts.push(`<text class="axis-label" x="${num(f.left + f.width / 2)}" y="${num(bottom + 32)}" text-anchor="middle">${esc(x.label)}</text>`);
  if (y.label) {
    const cx = f.left - 42;
    const cy = f.top + f.height / 2;
    parts.push(`<text class="axis-label" x="${num(cx)}" y="${num(cy)}" text-anchor="middle" transform="rotate(-90 ${num(cx)} ${num(cy)})">${esc(y.label)}</text>`);
  }
  parts.push(`</g>`);
  return parts.join("\n");
}

export function plotBackground(f: Frame): string {
  return `<rect class="plot-bg" x="${num(f.left)}" y="${num(f.top)}" width="${num(f.width)}" height="${num(f.height)}" fill="#fff" stroke="#c9d0db"/>`;
}

export function emptyNote(f: Frame, text: string): string {
  return `<text class="empty" x="${num(f.left + f.width / 2)}" y="${num(f.top + f.height / 2)}" text-anchor="middle">${esc(text)}</text>`;
}

/** Legend items laid out left to right, wrapping at `maxWidth`; returns its height. */
export function legend(items: LegendItem[], x0: number, y0: number, maxWidth: number): { svg: string; height: number } {
  if (items.length === 0) return { svg: "", height: 0 };
  const ROW = 18;
  const parts: string[] = [`<g class="legend">`];
  let x = x0;
  let y = y0;
  for (const it of items) {
    const w = 28 + it.label.length * 6.3 + 14;
    if (x > x0 && x + w > x0 + maxWidth) {
      x = x0;
      y += ROW;
    }
    const cy = y + 9;
    if (it.kind === "line") {
      parts.push(`<line x1="${num(x)}" y1="${num(cy)}" x2="${num(x + 22)}" y2="${num(cy)}" stroke="${it.color}" stroke-width="2"${dashAttr(it.dash)}/>`);
      if (it.marker) parts.push(marker(it.marker, x + 11, cy, it.color, it.color));
    } else if (it.kind === "box") {
      parts.push(`<rect x="${num(x + 4)}" y="${num(cy - 6)}" width="14" height="12" fill="${it.color}" stroke="#b8c0cc"/>`);
    } else {
      parts.push(marker(it.kind, x + 11, cy, it.color, it.fill ?? it.color));
    }
    parts.push(`<text class="legend-label" x="${num(x + 28)}" y="${num(cy + 4)}">${esc(it.label)}</text>`);
    x += w;
  }
  parts.push(`</g>`);
  return { svg: parts.join("\n"), height: y - y0 + ROW };
}

export function marker(kind: Marker, x: number, y: number, stroke: string, fill: string, tip?: string): string {
  const t = tip ? `<title>${esc(tip)}</title>` : "";
  switch (kind) {
    case "dot":
      return `<circle cx="${num(x)}" cy="${num(y)}" r="3.5" fill="${fill}" stroke="${stroke}" stroke-width="1.5">${t}</circle>`;
    case "square":
      return `<rect x="${num(x - 3.5)}" y="${num(y - 3.5)}" width="7" height="7" fill="${fill}" stroke="${stroke}" stroke-width="1.5">${t}</rect>`;
    case "diamond":
      return `<path d="M${num(x)} ${num(y - 5)}L${num(x + 5)} ${num(y)}L${num(x)} ${num(y + 5)}L${num(x - 5)} ${num(y)}Z" fill="${fill}" stroke="${stroke}" stroke-width="1.5">${t}</path>`;
    case "ring":
      return `<circle cx="${num(x)}" cy="${num(y)}" r="8" fill="none" stroke="${stroke}" stroke-width="2.5">${t}</circle>`;
    case "cross":
      return `<path d="M${num(x - 5)} ${num(y - 5)}L${num(x + 5)} ${num(y + 5)}M${num(x - 5)} ${num(y + 5)}L${num(x + 5)} ${num(y - 5)}" stroke="${stroke}" stroke-width="1.5" fill="none">${t}</path>`;
  }
}

/** An SVG path through the points; `null` breaks the line. Always a valid `d` (possibly empty). */
export function linePath(points: ([number, number] | null)[]): string {
  let d = "";
  let pen = false;
  for (const p of points) {
    if (p === null || !Number.isFinite(p[0]) || !Number.isFinite(p[1])) {
      pen = false;
      continue;
    }
    d += `${pen ? "L" : "M"}${num(p[0])} ${num(p[1])}`;
    pen = true;
  }
  return d;
}

/**
 * A coordinate, to two decimals. Not-finite values are kept out before this point (gaps in lines,
 * clamped curves, padded axes), and not masked here, so that the tests see one if it slips through.
 */
export function num(x: number): string {
  const r = Math.round(x * 100) / 100;
  return Object.is(r, -0) ? "0" : String(r);
}

export function dashAttr(dash: string | undefined): string {
  return dash ? ` stroke-dasharray="${dash}"` : "";
}
