/**
 * torch.optim.Adam (single-tensor path of PyTorch 1.13/2.x, no weight decay, no amsgrad) and
 * clip_grad_norm_, with state that a checkpoint can hold.
 */
import * as tf from "./tf";

export interface AdamOptions {
  lr: number;
  beta1: number;
  beta2: number;
  eps: number;
}

export const ADAM_DEFAULTS: AdamOptions = { lr: 2e-4, beta1: 0.9, beta2: 0.999, eps: 1e-8 };

interface SlotState {
  step: number;
  expAvg: tf.Tensor;
  expAvgSq: tf.Tensor;
}

export class Adam {
  readonly options: AdamOptions;
  private readonly state = new Map<string, SlotState>();

  constructor(options: Partial<AdamOptions> = {}) {
    this.options = { ...ADAM_DEFAULTS, ...options };
  }

  get lr(): number {
    return this.options.lr;
  }

  set lr(v: number) {
    this.options.lr = v;
  }

  /**
   * One update. Parameters without a gradient are skipped, as PyTorch skips `grad is None`.
   */
  step(params: Map<string, tf.Variable>, grads: Map<string, tf.Tensor>): void {
    const { lr, beta1, beta2, eps } = this.options;
    for (const [name, g] of grads) {
      const p = params.get(name);
      if (!p) throw new Error(`Adam: gradient for unknown parameter ${name}`);
      let s = this.state.get(name);
      if (!s) {
        s = { step: 0, expAvg: tf.keep(tf.zerosLike(p)), expAvgSq: tf.keep(tf.zerosLike(p)) };
        this.state.set(name, s);
      }
      const slot = s;
      slot.step += 1;
      const bc1 = 1 - beta1 ** slot.step;
      const bc2Sqrt = Math.sqrt(1 - beta2 ** slot.step);
      const [m, v] = tf.tidy(() => {
        const m = tf.add(tf.mul(slot.expAvg, beta1), tf.mul(g, 1 - beta1));
        const v = tf.add(tf.mul(slot.expAvgSq, beta2), tf.mul(tf.mul(g, g), 1 - beta2));
        const denom = tf.add(tf.div(tf.sqrt(v), bc2Sqrt), eps);
        p.assign(tf.sub(p, tf.mul(tf.div(m, denom), lr / bc1)));
        return [tf.keep(m), tf.keep(v)];
      });
      slot.expAvg.dispose();
      slot.expAvgSq.dispose();
      slot.expAvg = m;
      slot.expAvgSq = v;
    }
  }

  /** State as named arrays (`<param>.exp_avg`, `<param>.exp_avg_sq`, `<param>.step`) for checkpoints. */
  async toArrays(): Promise<Map<string, { shape: number[]; data: Float32Array }>> {
    const out = new Map<string, { shape: number[]; data: Float32Array }>();
    for (const [name, s] of this.state) {
      out.set(`${name}.exp_avg`, { shape: s.expAvg.shape, data: Float32Array.from(await s.expAvg.data()) });
      out.set(`${name}.exp_avg_sq`, { shape: s.expAvgSq.shape, data: Float32Array.from(await s.expAvgSq.data()) });
      out.set(`${name}.step`, { shape: [1], data: Float32Array.of(s.step) });
    }
    return out;
  }

  /** Restores state written by toArrays. */
  loadArrays(arrays: Map<string, { shape: readonly number[]; data: ArrayLike<number> | BigInt64Array }>): void {
    this.reset();
    for (const [key, a] of arrays) {
      if (!key.endsWith(".step")) continue;
      const name = key.slice(0, -".step".length);
      const m = arrays.get(`${name}.exp_avg`);
      const v = arrays.get(`${name}.exp_avg_sq`);
      if (!m || !v) throw new Error(`optimizer state for ${name} is incomplete`);
      const f32 = (x: ArrayLike<number> | BigInt64Array) => Float32Array.from(x as ArrayLike<number>, Number);
      this.state.set(name, {
        step: Number(a.data[0]),
        expAvg: tf.keep(tf.tensor(f32(m.data), [...m.shape])),
        expAvgSq: tf.keep(tf.tensor(f32(v.data), [...v.shape])),
      });
    }
  }

  reset(): void {
    for (const s of this.state.values()) {
      s.expAvg.dispose();
      s.expAvgSq.dispose();
    }
    this.state.clear();
  }
}

/**
 * clip_grad_norm_: scales all gradients by max_norm / (total_norm + 1e-6) when that is below 1.
 * Returns the new gradients (disposing the old ones) and the total norm before clipping.
 */
export function clipGradNorm(grads: Map<string, tf.Tensor>, maxNorm: number): { grads: Map<string, tf.Tensor>; totalNorm: number } {
  // Sum of squares in float64: a float32 reduction over the projection head's 36·E·256 weights
  // loses ~1e-5 relative, which then scales every clipped gradient.
  let sq = 0;
  for (const g of grads.values()) {
    const d = g.dataSync();
    for (let i = 0; i < d.length; i++) sq += d[i] * d[i];
  }
  const totalNorm = Math.sqrt(sq);
  if (maxNorm <= 0) return { grads, totalNorm };
  const coef = Math.min(maxNorm / (totalNorm + 1e-6), 1);
  const out = new Map<string, tf.Tensor>();
  for (const [k, g] of grads) {
    out.set(k, tf.mul(g, coef));
    g.dispose();
  }
  return { grads: out, totalNorm };
}
