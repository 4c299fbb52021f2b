import { describe, expect, test } from "bun:test";
import type { MetricsRecord, SplitRecord } from "../../trainer/metrics";
import { type ReportMeta, renderReport } from "../../trainer/report";
import { runRecords, splitRecord } from "./metrics-fixture";

interface SvgInfo {
  id: string;
  className: string;
  title: string;
  /** Order of the first child element: the `<title>` must come first. */
  firstChild: string;
  counts: Record<string, number>;
  paths: { className: string; d: string }[];
  rects: { y: number; height: number; fill: string; hasTitle: boolean }[];
  tickLabels: string[];
  axisLabels: string[];
  legendLabels: string[];
}

interface Parsed {
  svgs: SvgInfo[];
  elements: Record<string, number>;
  texts: Record<string, string>;
  rows: { table: string; className: string }[];
}

/** Walks the document with Bun's HTMLRewriter (a streaming HTML parser) and collects what the tests check. */
async function parse(html: string): Promise<Parsed> {
  const svgs: SvgInfo[] = [];
  const elements: Record<string, number> = {};
  const texts: Record<string, string> = {};
  const rows: Parsed["rows"] = [];
  let svg: SvgInfo | null = null;
  let textTarget: ((s: string) => void) | null = null;
  let table = "";
  const count = (tag: string) => {
    elements[tag] = (elements[tag] ?? 0) + 1;
  };
  let rewriter = new HTMLRewriter();
  for (const tag of ["script", "img", "link", "iframe", "style", "svg", "details", "table", "section", "b", "i", "h1"]) {
    rewriter = rewriter.on(tag, { element: () => count(tag) });
  }
  rewriter = rewriter
    .on("h1", { text: (c) => void (texts.h1 = (texts.h1 ?? "") + c.text) })
    .on("header p", { text: (c) => void (texts.header = (texts.header ?? "") + c.text) })
    .on("#config", { text: (c) => void (texts.config = (texts.config ?? "") + c.text) })
    .on("#events", { text: (c) => void (texts.events = (texts.events ?? "") + c.text) })
    .on("#table-summary", { text: (c) => void (texts.summary = (texts.summary ?? "") + c.text) })
    .on("table", {
      element(el) {
        table = el.getAttribute("id") ?? "";
      },
    })
    .on("tbody tr", { element: (el) => void rows.push({ table, className: el.getAttribute("class") ?? "" }) })
    .on("svg", {
      element(el) {
        const info: SvgInfo = { id: el.getAttribute("id") ?? "", className: el.getAttribute("class") ?? "", title: "", firstChild: "", counts: {}, paths: [], rects: [], tickLabels: [], axisLabels: [], legendLabels: [] };
        svg = info;
        svgs.push(info);
        el.onEndTag(() => {
          svg = null;
        });
      },
    })
    .on("svg *", {
      element(el) {
        if (!svg) return;
        if (svg.firstChild === "") svg.firstChild = el.tagName;
        svg.counts[el.tagName] = (svg.counts[el.tagName] ?? 0) + 1;
        if (el.tagName === "path") svg.paths.push({ className: el.getAttribute("class") ?? "", d: el.getAttribute("d") ?? "" });
        if (el.tagName === "rect") svg.rects.push({ y: Number(el.getAttribute("y")), height: Number(el.getAttribute("height")), fill: el.getAttribute("fill") ?? "", hasTitle: false });
      },
    })
    .on("svg rect > title", {
      element() {
        if (svg) svg.rects[svg.rects.length - 1].hasTitle = true;
      },
    })
    .on("svg > title", { text: (c) => void (svg && (svg.title += c.text)) })
    .on("svg text", {
      element(el) {
        const cls = el.getAttribute("class") ?? "";
        const s = svg;
        if (!s) return;
        let buf = "";
        textTarget = (t) => {
          buf += t;
        };
        el.onEndTag(() => {
          if (cls === "tick-label") s.tickLabels.push(buf);
          else if (cls === "axis-label") s.axisLabels.push(buf);
          else if (cls === "legend-label") s.legendLabels.push(buf);
          textTarget = null;
        });
      },
      text: (c) => textTarget?.(c.text),
    });
  await rewriter.transform(new Response(html)).text();
  return { svgs, elements, texts, rows };
}

const CONFIG: Record<string, unknown> = { data_name: "f30k_precomp", noise_ratio: 0.2, p_threshold: 0.5, learning_rate: 0.0002, warmup_epoch: 2, num_epochs: 3 };
const META: ReportMeta = { title: "PC2 f30k", config: CONFIG, generatedAt: "2024-05-01T12:00:00.000Z" };

function render(records: MetricsRecord[], meta: Partial<ReportMeta> = {}): string {
  return renderReport(records, { ...META, ...meta });
}

/** The words a broken computation leaves in markup. */
const BROKEN = /NaN|undefined|Infinity|\[object Object\]/;

/** Pulls every number out of a path's `d`. */
function pathNumbers(d: string): number[] {
  return (d.match(/-?\d+(\.\d+)?(e-?\d+)?/g) ?? []).map(Number);
}

/** Every y coordinate of a path made of M/L commands. */
function pathYs(d: string): number[] {
  return [...d.matchAll(/[ML](-?[\d.]+) (-?[\d.]+)/g)].map((m) => Number(m[2]));
}

const CHART_IDS = ["chart-loss", "chart-validation", "chart-split"];

describe("renderReport: a run with known noise (2 warmup + 3 co-training epochs)", async () => {
  const records = runRecords({ warmupEpochs: 2, trainEpochs: 3, knownNoise: true });
  const html = render(records);
  const doc = await parse(html);
  const byId = new Map(doc.svgs.map((s) => [s.id, s]));

  test("is one offline document: no scripts, external images, stylesheets or frames", () => {
    expect(html.startsWith("<!DOCTYPE html>")).toBe(true);
    expect(doc.elements.script ?? 0).toBe(0);
    expect(doc.elements.img ?? 0).toBe(0);
    expect(doc.elements.link ?? 0).toBe(0);
    expect(doc.elements.iframe ?? 0).toBe(0);
    expect(doc.elements.style).toBe(1);
    expect(html).not.toMatch(/https?:\/\/(?!www\.w3\.org\/2000\/svg)/);
    expect(html).not.toMatch(/@import|url\(/);
  });

  test("has every chart, each with a leading <title>, ticks, axis labels and a legend", () => {
    for (const id of CHART_IDS) {
      const s = byId.get(id);
      expect(s, id).toBeDefined();
      expect(s!.firstChild, id).toBe("title");
      expect(s!.title.length, id).toBeGreaterThan(5);
      expect(s!.tickLabels.length, id).toBeGreaterThanOrEqual(4);
      expect(s!.axisLabels.length, id).toBeGreaterThanOrEqual(2);
      expect(s!.legendLabels.length, id).toBeGreaterThanOrEqual(2);
      expect(s!.paths.some((p) => p.d.length > 0), id).toBe(true);
    }
  });

  test("has no NaN, undefined or Infinity anywhere", () => {
    expect(html).not.toMatch(BROKEN);
  });

  test("loss chart: one line per loss term per net, warmup shaded apart from co-training", () => {
    const s = byId.get("chart-loss")!;
    const series = s.paths.filter((p) => p.className === "series");
    expect(series.length).toBe(6 * 2);
    for (const p of series) expect(pathNumbers(p.d).length).toBeGreaterThanOrEqual(4);
    expect(s.legendLabels).toEqual(expect.arrayContaining(["triplet_loss", "triplet_loss_u", "net A", "net B", "warmup"]));
    expect(html).toContain(`class="phase"`);
    // The triplet loss covers warmup and co-training: its x runs over the whole axis, left to right.
    const triplet = series[0].d;
    const xs = [...triplet.matchAll(/[ML](-?[\d.]+) /g)].map((m) => Number(m[1]));
    for (let i = 1; i < xs.length; i++) expect(xs[i]).toBeGreaterThan(xs[i - 1]);
    const ce = series.find((_, i) => i === 1)!.d;
    const ceStart = Number(/M(-?[\d.]+)/.exec(ce)![1]);
    expect(ceStart).toBeGreaterThan(xs[0] + 100); // ce losses start with co-training, after the warmup band
  });

  test("validation chart marks the warmup point apart and rings the best kept", () => {
    const s = byId.get("chart-validation")!;
    expect(s.tickLabels).toContain("warmup");
    expect(html).toMatch(/<title>warmup: rsum 226\.0<\/title>/);
    expect(html).toMatch(/<title>best kept: epoch 1, rsum 262\.3<\/title>/);
    expect(s.legendLabels).toEqual(expect.arrayContaining(["after warmup", "best kept"]));
  });

  test("validation table: one row per epoch, the best highlighted", () => {
    const rows = doc.rows.filter((r) => r.table === "table-validation");
    expect(rows.length).toBe(4);
    expect(rows.map((r) => r.className)).toEqual(["", "", "best", ""]);
  });

  test("split chart draws precision, recall and share for nets A and B, loss and PO", () => {
    const s = byId.get("chart-split")!;
    expect(s.paths.filter((p) => p.className === "series").length).toBe(3 * 4);
    expect(s.legendLabels).toEqual(["net A, loss split", "net A, po split", "net B, loss split", "net B, po split"]);
  });

  test("one histogram per (epoch, net, by), with bars and the fitted mixture", () => {
    const hists = doc.svgs.filter((s) => s.className.split(" ").includes("hist"));
    expect(hists.length).toBe(3 * 2 * 2);
    const ids = hists.map((h) => h.id).sort();
    const expected = ["loss", "po"].flatMap((by) => [0, 1, 2].flatMap((e) => ["A", "B"].map((n) => `hist-${by}-e${e}-${n}`))).sort();
    expect(ids).toEqual(expected);
    for (const h of hists) {
      expect(h.firstChild).toBe("title");
      expect(h.tickLabels.length).toBeGreaterThanOrEqual(4);
      expect(h.axisLabels.length).toBe(2);
      expect(h.legendLabels).toEqual(["clean", "noisy", "GMM", "clean comp.", "noisy comp."]);
      expect(h.rects.filter((r) => r.hasTitle && r.fill === "#7aa6d6").length).toBeGreaterThan(5);
      expect(h.rects.filter((r) => r.hasTitle && r.fill === "#f0a35e").length).toBeGreaterThan(5);
      const gmm = h.paths.find((p) => p.className === "gmm");
      expect(gmm && pathNumbers(gmm.d).length).toBeGreaterThan(100);
      expect(h.paths.filter((p) => p.className === "gmm-component").length).toBe(2);
    }
  });

  test("the mixture density is scaled to the count axis: its peak meets the tallest bar", () => {
    const h = byId.get("hist-loss-e1-A")!;
    const bars = h.rects.filter((r) => r.hasTitle);
    const base = bars[0].y + bars[0].height;
    const tallest = Math.max(...bars.map((r) => base - r.y));
    const gmm = h.paths.find((p) => p.className === "gmm")!;
    const peak = base - Math.min(...pathYs(gmm.d));
    expect(peak / tallest).toBeGreaterThan(0.85);
    expect(peak / tallest).toBeLessThan(1.15);
  });

  test("the split boundary lies between the clean and noisy means", () => {
    const m = /<line class="boundary"[^>]*><title>clean posterior = 0\.50 at x = ([\d.]+)<\/title>/.exec(html);
    expect(m).not.toBeNull();
    const x = Number(m![1]);
    expect(x).toBeGreaterThan(0.2);
    expect(x).toBeLessThan(0.65);
  });

  test("summary: best validation, test results of the best epoch, configuration collapsed", () => {
    expect(doc.texts.summary).toContain("262.3");
    expect(doc.texts.summary).toContain("epoch 1");
    expect(doc.texts.summary).toContain("rsum 263.3 on test");
    const tests = doc.rows.filter((r) => r.table === "table-tests");
    expect(tests.length).toBe(2); // epochs 0 and 1 improved the best
    expect(tests.map((r) => r.className)).toEqual(["", "best"]);
    expect(html).toMatch(/<details id="config">\s*<summary>Configuration \(6 settings\)<\/summary>/);
    expect(doc.texts.config).toContain("f30k_precomp");
    expect(doc.texts.config).toContain("0.0002");
    expect(doc.texts.header).toContain("2024-05-01T12:00:00.000Z");
  });
});

describe("renderReport: a run whose noise is unknown", async () => {
  const records = runRecords({ warmupEpochs: 2, trainEpochs: 3, knownNoise: false });
  const html = render(records, { config: { ...CONFIG, data_name: "cc152k_precomp" } });
  const doc = await parse(html);

  test("histograms hold all pairs in one colour and no noisy bars", () => {
    const hists = doc.svgs.filter((s) => s.className.split(" ").includes("hist"));
    expect(hists.length).toBe(12);
    for (const h of hists) {
      expect(h.legendLabels[0]).toBe("all pairs");
      expect(h.legendLabels).not.toContain("noisy");
      expect(h.rects.filter((r) => r.fill === "#f0a35e").length).toBe(0);
      expect(h.rects.filter((r) => r.hasTitle).length).toBeGreaterThan(5);
    }
  });

  test("precision and recall panels say the noise is unknown; the share is still drawn", () => {
    expect((html.match(/Noise unknown for this dataset\./g) ?? []).length).toBe(2);
    const split = doc.svgs.find((s) => s.id === "chart-split")!;
    expect(split.paths.filter((p) => p.className === "series").length).toBe(4);
  });

  test("has no NaN, undefined or Infinity", () => {
    expect(html).not.toMatch(BROKEN);
  });
});

describe("renderReport escapes every string it is given", async () => {
  const evil = `<script>alert("x")</script><img src=x onerror=alert(1)>&'`;
  const records: MetricsRecord[] = [...runRecords({ warmupEpochs: 1, trainEpochs: 1, knownNoise: true }), { type: "event", message: evil, time: 1_700_000_000 }];
  const html = render(records, { title: evil, config: { [evil]: evil, nested: { evil } }, generatedAt: evil });
  const doc = await parse(html);

  test("no element is injected", () => {
    expect(doc.elements.script ?? 0).toBe(0);
    expect(doc.elements.img ?? 0).toBe(0);
    expect(html).not.toContain("<script");
    expect(html).not.toContain("<img");
  });

  test("the text shows the strings, escaped", () => {
    const escaped = "&lt;script&gt;alert(&quot;x&quot;)&lt;/script&gt;&lt;img src=x onerror=alert(1)&gt;&amp;&#39;";
    expect(doc.texts.h1).toBe(escaped);
    expect(doc.texts.events).toContain(escaped);
    expect(doc.texts.config).toContain(escaped);
    expect(doc.texts.header).toContain(escaped);
    expect(html).toContain(`<title>${escaped}</title>`);
  });
});

describe("renderReport: degenerate inputs", () => {
  const cases: [string, MetricsRecord[]][] = [
    ["no records", []],
    ["only events", [{ type: "event", message: "started" }]],
    ["one warmup epoch, nothing else", runRecords({ warmupEpochs: 1, trainEpochs: 0, knownNoise: true })],
    ["one co-training epoch, no warmup", runRecords({ warmupEpochs: 0, trainEpochs: 1, knownNoise: true })],
    ["one step record", [runRecords({ warmupEpochs: 1, trainEpochs: 0, knownNoise: true })[0]]],
    ["no test results", runRecords({ warmupEpochs: 1, trainEpochs: 2, knownNoise: true }).filter((r) => r.type !== "test")],
    ["a NaN loss written as null", runRecords({ warmupEpochs: 1, trainEpochs: 1, knownNoise: true }).map((r) => (r.type === "step" && r.step === 20 ? { ...r, triplet_loss: null, lr: null } : r))],
    ["a single bin", [splitRecord(0, "A", "loss", true, 1)]],
  ];
  const zeroHist = (s: SplitRecord): SplitRecord => ({ ...s, size: 0, selected_noisy: 0, hist: { bins: s.hist.bins, clean: s.hist.clean.map(() => 0), noisy: s.hist.noisy && s.hist.noisy.map(() => 0) } });
  cases.push(["all-zero histograms", [zeroHist(splitRecord(0, "A", "loss", true)), zeroHist(splitRecord(0, "B", "po", false))]]);
  cases.push(["zero variance", [{ ...splitRecord(0, "A", "loss", true), gmm: { means: [0.2, 0.2], variances: [0, 0], weights: [1, 0] } }]]);
  cases.push(["a forced split", [{ ...splitRecord(0, "A", "po", true), forced: true, selected_noisy: 20 }]]);
  cases.push(["a constant loss", runRecords({ warmupEpochs: 1, trainEpochs: 0, knownNoise: true }).map((r) => (r.type === "step" ? { ...r, triplet_loss: 1 } : r))]);

  for (const [name, records] of cases) {
    test(name, async () => {
      const html = render(records, { config: {} });
      expect(html).not.toMatch(BROKEN);
      const doc = await parse(html);
      for (const id of CHART_IDS) {
        const s = doc.svgs.find((x) => x.id === id);
        expect(s, `${name}: ${id}`).toBeDefined();
        expect(s!.firstChild).toBe("title");
        expect(s!.tickLabels.length).toBeGreaterThanOrEqual(2);
        expect(s!.counts.rect ?? 0).toBeGreaterThanOrEqual(1);
      }
      const splits = records.filter((r) => r.type === "split").length;
      expect(doc.svgs.filter((s) => s.className.split(" ").includes("hist")).length).toBe(splits);
    });
  }

  test("empty charts say so", () => {
    const html = render([], { config: {} });
    expect(html).toContain("No step records yet.");
    expect(html).toContain("No validation records yet.");
    expect(html).toContain("No split records yet.");
    expect(html).toContain("No test results.");
  });

  test("a zero-variance component stays inside its plot", async () => {
    const s: SplitRecord = { ...splitRecord(0, "A", "loss", true), gmm: { means: [0.2, 0.7], variances: [0, 0.01], weights: [0.8, 0.2] } };
    const doc = await parse(render([s], { config: {} }));
    const h = doc.svgs.find((x) => x.id === "hist-loss-e0-A")!;
    const plot = h.rects[0]; // the plot background comes first
    for (const p of h.paths.filter((q) => q.className.startsWith("gmm"))) {
      for (const y of pathYs(p.d)) {
        expect(y).toBeGreaterThanOrEqual(plot.y - 0.01);
        expect(y).toBeLessThanOrEqual(plot.y + plot.height + 0.01);
      }
    }
  });

  test("a resumed run's repeated records count once (the last wins)", async () => {
    const records = runRecords({ warmupEpochs: 1, trainEpochs: 2, knownNoise: true });
    const again = records.filter((r) => r.type === "split" || r.type === "validation");
    const doc = await parse(render([...records, ...again], { config: {} }));
    expect(doc.rows.filter((r) => r.table === "table-validation").length).toBe(3);
    expect(doc.svgs.filter((s) => s.className.split(" ").includes("hist")).length).toBe(2 * 2 * 2);
  });
});

describe("renderReport: diagnostics and alarms", () => {
  const spread = (std: number) => ({ mean: 0.5, std, meanPos: 0.6, stdPos: std });
  const base = runRecords({ warmupEpochs: 1, trainEpochs: 2, knownNoise: true }).map((r) => {
    if (r.type === "validation") return { ...r, spread: { A: spread(0.03), B: spread(r.epoch === 1 ? 0.0004 : 0.02) } };
    if (r.type === "split") return { ...r, auc: r.net === "A" ? 0.93 : 0.71 };
    return r;
  });

  test("a run without alarms: the diagnostics table, no banner", () => {
    const html = render(base);
    expect(html).not.toContain(`id="alarms"`);
    const table = html.slice(html.indexOf(`id="table-diagnostics"`), html.indexOf("</table>", html.indexOf(`id="table-diagnostics"`)));
    // warmup and two co-training epochs, two nets each
    expect(table.match(/<tr>|<tr class/g)!.length - 1).toBe(6);
    expect(table).toContain("<td>0.930</td>");
    expect(table).toContain("<td>0.710</td>");
    // net B's spread at epoch 1 against its spread after warmup: 0.0004 / 0.02
    expect(table).toContain("<td>4.00e-4</td><td>0.02</td>");
  });

  test("alarms: a banner at the top naming each, the net's row flagged", () => {
    const alarm = { type: "alarm" as const, kind: "collapsed_net" as const, epoch: 1, net: "B" as const, value: 0.0004, threshold: 0.002, action: "restored from checkpoint_latest_validation.safetensors, learning rate × 0.1 from now on (--recovery restore)" };
    const split = { type: "alarm" as const, kind: "degenerate_split" as const, epoch: 1, net: "B" as const, value: 0.002, threshold: 0.01, action: "reported: net A trains on it" };
    const html = render([...base, split, alarm]);
    const banner = html.slice(html.indexOf(`id="alarms"`), html.indexOf("</div>", html.indexOf(`id="alarms"`)));
    expect(html.indexOf(`id="alarms"`)).toBeLessThan(html.indexOf(`id="summary"`));
    expect(banner).toContain("2 alarms");
    expect(banner).toContain("net B <b>collapsed</b>");
    expect(banner).toContain("keeps 0.2% of the pairs as clean");
    expect(banner).toContain("restored from checkpoint_latest_validation.safetensors");
    expect(html).toMatch(/<tr class="flagged"><td>co-training epoch 1<\/td><td>B<\/td>|<tr class="flagged"><td>[^<]*1<\/td><td>B<\/td>/);
    expect(html).not.toMatch(BROKEN);
  });
});
