/**
 * Text for the report's HTML: escaping, and numbers, durations, epochs and settings as the tables
 * and tooltips show them. Every string that comes from the records or the configuration goes
 * through `esc` before it reaches the page.
 */

const HTML_ESCAPES: Record<string, string> = { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" };

/** Escapes text and attribute values alike. */
export function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => HTML_ESCAPES[c]);
}

/** A number for the tables; "–" when not finite. */
export function fix(x: number, digits: number): string {
  return Number.isFinite(x) ? x.toFixed(digits) : "–";
}

export function duration(seconds: number): string {
  if (!Number.isFinite(seconds) || seconds <= 0) return "0s";
  const s = Math.round(seconds);
  const h = Math.floor(s / 3600);
  const m = Math.floor((s % 3600) / 60);
  const rest = s % 60;
  return h > 0 ? `${h}h ${m}m` : m > 0 ? `${m}m ${rest}s` : `${rest}s`;
}

export function configValue(v: unknown): string {
  if (typeof v === "string") return v;
  try {
    return JSON.stringify(v) ?? String(v);
  } catch {
    return String(v);
  }
}

export function epochName(e: number | "warmup"): string {
  return e === "warmup" ? "warmup" : `epoch ${e}`;
}
