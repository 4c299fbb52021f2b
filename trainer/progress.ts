/**
 * Progress of a training phase for a person watching: on a terminal one line redrawn in place (bar,
 * step/total, percentage, running values, elapsed and ETA); in a log (no TTY) a plain line every
 * `logStep` steps, as the official `train`/`warmup` print.
 *
 * Written here rather than taken from a progress-bar package: the installed dependencies hold none,
 * and the trainer needs both modes behind one interface with an injectable clock for its tests.
 */

export interface ProgressOptions {
  /** Redraw one line in place (a terminal) rather than print log lines. */
  tty: boolean;
  /** Plain mode: print every `logStep` steps (besides the first and the last). */
  logStep: number;
  write: (s: string) => void;
  /** Milliseconds; `performance.now` when absent. */
  now?: () => number;
  /** Terminal width: a redrawn line is cut to it so that it never wraps (a wrapped line cannot be redrawn). */
  columns?: number;
}

export interface Progress {
  /** Begins a phase of `total` steps; a phase still open is ended first. */
  start(phase: string, total: number, label?: string): void;
  /**
   * Reports `step` steps done of the phase (1 after the first batch, `total` after the last), with
   * running values. The first tick of a phase also says where it began (a resumed epoch starts past
   * 0: the ETA counts only the steps done since `start`), so tick after every step.
   */
  tick(step: number, values?: Record<string, number>): void;
  /** Ends the phase: the last state is shown, then `summary` if given, and the line is finished. */
  end(summary?: string): void;
}

/** Least time between two redraws of the TTY line (at most ~10 per second). */
export const REDRAW_INTERVAL_MS = 100;
const BAR_WIDTH = 24;

export function createProgress(opts: ProgressOptions): Progress {
  if (!Number.isInteger(opts.logStep) || opts.logStep < 1) {
    throw new RangeError(`createProgress: logStep must be a positive integer, got ${opts.logStep}`);
  }
  const now = opts.now ?? (() => performance.now());
  let phase: { name: string; total: number; startedAt: number } | null = null;
  /** Steps already done when the first tick came (a resumed epoch): the rate counts only this run's. */
  let base: number | null = null;
  let step = 0;
  let values: Record<string, number> = {};
  let lastDraw = -Infinity;
  let drawnStep = -1;

  const header = () => `[${phase!.name}]`;

  const timing = (t: number): string => {
    const elapsed = (t - phase!.startedAt) / 1000;
    const done = step - (base ?? 0);
    const remaining = phase!.total - step;
    const eta = remaining <= 0 ? 0 : done > 0 && elapsed > 0 ? (elapsed / done) * remaining : NaN;
    return `elapsed ${clock(elapsed)} eta ${clock(eta)}`;
  };

  const valueText = () =>
    Object.entries(values)
      .map(([k, v]) => `${k} ${formatValue(v)}`)
      .join(" ");

  const plainLine = (t: number) => [header(), `${step}/${phase!.total}`, valueText(), timing(t)].filter((s) => s !== "").join(" ");

  const ttyLine = (t: number) => {
    const total = phase!.total;
    const frac = total > 0 ? Math.min(1, Math.max(0, step / total)) : 0;
    const filled = Math.round(frac * BAR_WIDTH);
    const bar = "█".repeat(filled) + "░".repeat(BAR_WIDTH - filled);
    const pct = `${Math.floor(frac * 100)}%`.padStart(4);
    const line = [header(), bar, `${step}/${total}`, pct, valueText(), timing(t)].filter((s) => s !== "").join(" ");
    const max = opts.columns !== undefined && opts.columns > 1 ? opts.columns - 1 : Infinity;
    return line.length > max ? line.slice(0, max) : line;
  };

  const draw = (t: number) => {
    if (opts.tty) opts.write(`\r\x1b[2K${ttyLine(t)}`);
    else opts.write(`${plainLine(t)}\n`);
    lastDraw = t;
    drawnStep = step;
  };

  const progress: Progress = {
    start(name, total, label) {
      if (phase) progress.end();
      if (!Number.isFinite(total) || total < 0) throw new RangeError(`progress.start: total must be a non-negative number, got ${total} (phase '${name}')`);
      phase = { name: label ? `${name} ${label}` : name, total, startedAt: now() };
      base = null;
      step = 0;
      values = {};
      lastDraw = -Infinity;
      drawnStep = -1;
    },
    tick(s, v) {
      if (!phase) throw new Error(`progress.tick(${s}) before progress.start`);
      if (base === null) base = Math.max(0, s - 1);
      step = s;
      if (v) values = { ...v };
      const t = now();
      const first = drawnStep < 0;
      const last = s >= phase.total;
      if (opts.tty) {
        if (first || last || t - lastDraw >= REDRAW_INTERVAL_MS) draw(t);
      } else if (first || last || s % opts.logStep === 0) {
        draw(t);
      }
    },
    end(summary) {
      if (!phase) return;
      const t = now();
      if (opts.tty) {
        // Redraw so the line shows the final state even when the last tick was throttled.
        if (drawnStep !== step || drawnStep < 0) draw(t);
        opts.write(`${summary ? `  ${summary}` : ""}\n`);
      } else {
        if (drawnStep !== step && step > 0) draw(t);
        if (summary) opts.write(`${header()} ${summary}\n`);
      }
      phase = null;
    },
  };
  return progress;
}

/** Four significant digits; exponent form outside [1e-3, 1e4). */
export function formatValue(v: number): string {
  if (!Number.isFinite(v)) return String(v).toLowerCase();
  if (v === 0) return "0.000";
  const a = Math.abs(v);
  if (a >= 1e-3 && a < 1e4) return v.toPrecision(4);
  return v.toExponential(3);
}

/** `mm:ss`, or `h:mm:ss` from an hour on; `--:--` when unknown. */
export function clock(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds < 0) return "--:--";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const mm = String(Math.floor((s % 3600) / 60)).padStart(2, "0");
  const ss = String(s % 60).padStart(2, "0");
  return h > 0 ? `${h}:${mm}:${ss}` : `${mm}:${ss}`;
}
