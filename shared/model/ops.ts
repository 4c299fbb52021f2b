/**
 * Tensor building blocks shared by the model and the losses. Several have hand-written gradients:
 * they are faster on the wasm backend (whose BatchMatMul only uses XNNPACK for unbatched,
 * untransposed operands) and well defined where autodiff of the textbook formula is not
 * (the l2 norm of a zero vector, at padded caption positions).
 */
import * as tf from "./tf";
import { type Int8Matrix, isInt8 } from "./quantized";

type GradFunc = (dy: tf.Tensor, saved: tf.Tensor[]) => tf.Tensor | tf.Tensor[];

/** tf.customGrad with the tensor arguments typed (its own typing folds the save function into them). */
function customOp<A extends tf.Tensor[]>(f: (...args: [...A, tf.GradSaveFunc]) => { value: tf.Tensor; gradFunc: GradFunc }): (...args: A) => tf.Tensor {
  return tf.customGrad(f as unknown as Parameters<typeof tf.customGrad>[0]) as unknown as (...args: A) => tf.Tensor;
}

/**
 * Whether transposed products run fast on the active backend: true on cpu and tensorflow, and on
 * wasm once the SIMD batched-matmul kernel is registered (kernels.ts); tfjs-backend-wasm's own
 * kernel uses XNNPACK only for plain 2-D products, so without it operands are transposed first.
 */
let wasmTransposedFast = false;
export function setWasmTransposedMatMulFast(fast: boolean): void {
  wasmTransposedFast = fast;
}
export function transposedFast(): boolean {
  return tf.getBackend() !== "wasm" || wasmTransposedFast;
}

/**
 * Batched a[n] @ b[n] ([N, M, K] x [N, K, P]): one batched product where those are fast, else a
 * loop of 2-D products (XNNPACK).
 */
export function bmm(a: tf.Tensor3D, b: tf.Tensor3D): tf.Tensor3D {
  if (transposedFast()) return tf.matMul(a, b);
  const as = tf.unstack(a);
  const bs = tf.unstack(b);
  return tf.stack(as.map((x, n) => mm(x, bs[n]))) as tf.Tensor3D;
}

/**
 * Weights whose values never change again (a loaded inference model's, ParamStore.freeze): their
 * transposes are made once and kept, instead of once per call. A paper-size GRU spent about 60 ms
 * of an 82 ms query encoding transposing its 3072 × 1024 weight_hh.
 */
const frozenTransposes = new WeakMap<tf.Tensor, tf.Tensor | null>();
/** Frozen weights whose values go once their transpose is made: only the transpose is ever used. */
const replacedByTranspose = new WeakSet<tf.Tensor>();

/**
 * Marks a weight frozen. With `replace`, its values are released once its transpose is made, so
 * that it costs its bytes once, not twice: for weights that are only ever used transposed.
 */
export function freezeWeight(w: tf.Tensor, replace = false): void {
  if (!frozenTransposes.has(w)) frozenTransposes.set(w, null);
  if (replace) replacedByTranspose.add(w);
}

export function releaseWeight(w: tf.Tensor): void {
  frozenTransposes.get(w)?.dispose();
  frozenTransposes.delete(w);
}

/** w^T of a 2-D tensor: the kept one for a frozen weight, else a new tensor. */
export function transposeOf(w: tf.Tensor): tf.Tensor {
  if (!frozenTransposes.has(w)) return tf.transpose(w);
  let t = frozenTransposes.get(w);
  if (!t || t.isDisposed) {
    t = tf.keep(tf.transpose(w));
    frozenTransposes.set(w, t);
    if (replacedByTranspose.delete(w)) w.dispose(); // its shape stays readable, its values go
  }
  return t;
}

/** op(a) @ op(b) for 2-D operands, through explicit transposes when transposed products are slow. */
function matMul2d(a: tf.Tensor, b: tf.Tensor, ta: boolean, tb: boolean): tf.Tensor2D {
  if (transposedFast()) return tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D, ta, tb);
  return tf.matMul((ta ? tf.transpose(a) : a) as tf.Tensor2D, (tb ? transposeOf(b) : b) as tf.Tensor2D);
}

/** 2-D `a @ b` with a hand-written gradient (da = dy b^T, db = a^T dy) routed by matMul2d. */
export const mm = customOp((a: tf.Tensor, b: tf.Tensor, save: tf.GradSaveFunc) => {
  save([a, b]);
  return {
    value: tf.matMul(a as tf.Tensor2D, b as tf.Tensor2D),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sa, sb] = saved;
      return [matMul2d(dy, sb, false, true), matMul2d(sa, dy, true, false)];
    },
  };
}) as (a: tf.Tensor, b: tf.Tensor) => tf.Tensor2D;

/** 2-D `x @ w^T` (w is [out, in], as nn.Linear stores it) without materialising w^T when that is fast. */
const mmT = customOp((x: tf.Tensor, w: tf.Tensor, save: tf.GradSaveFunc) => {
  save([x, w]);
  return {
    value: matMul2d(x, w, false, true),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sw] = saved;
      return [tf.matMul(dy as tf.Tensor2D, sw as tf.Tensor2D), matMul2d(dy, sx, true, false)];
    },
  };
}) as (x: tf.Tensor, w: tf.Tensor) => tf.Tensor2D;

/**
 * `x @ W^T + b` over the last axis of x (PyTorch nn.Linear; W is [out, in]). An int8 W (a served
 * package's, quantized.ts) is multiplied outside tfjs, without a gradient.
 */
export function linear(x: tf.Tensor, w: tf.Tensor | Int8Matrix, b?: tf.Tensor): tf.Tensor {
  const inF = w.shape[1]!;
  const outF = w.shape[0]!;
  const lead = x.shape.slice(0, -1);
  let y: tf.Tensor = isInt8(w) ? int8Linear(x.reshape([-1, inF]), w) : mmT(x.reshape([-1, inF]), w);
  if (b) y = tf.add(y, b);
  return y.reshape([...lead, outF]);
}

function int8Linear(x: tf.Tensor, w: Int8Matrix): tf.Tensor {
  const m = x.shape[0]!;
  return tf.tensor2d(w.matmulT(x.dataSync() as Float32Array, m), [m, w.shape[0]]);
}

/** Rows `ids` of an embedding table [V, D] (tensor or int8), [ids.length, D]. */
export function embedRows(table: tf.Tensor | Int8Matrix, ids: tf.Tensor): tf.Tensor {
  if (!isInt8(table)) return tf.gather(table, ids);
  return tf.tensor2d(table.gather(ids.dataSync()), [ids.size, table.shape[1]]);
}

const l2normLast = customOp((x: tf.Tensor, epsT: tf.Tensor, save: tf.GradSaveFunc) => {
  const eps = epsT;
  const n = tf.sqrt(tf.sum(tf.square(x), -1, true));
  const d = tf.add(n, eps);
  save([x, n, d]);
  return {
    value: tf.div(x, d),
    gradFunc: (g: tf.Tensor, saved: tf.Tensor[]) => {
      const [sx, sn, sd] = saved;
      // d/dx [x / (|x| + eps)] = g/(|x|+eps) - x (x·g) / (|x| (|x|+eps)^2); the second term is 0 at x = 0.
      const s = tf.sum(tf.mul(sx, g), -1, true);
      const coef = tf.divNoNan(s, tf.mul(sn, tf.square(sd)));
      return [tf.sub(tf.div(g, sd), tf.mul(sx, coef)), tf.zerosLike(eps)];
    },
  };
});

/** The official `l2norm(X, dim=-1, eps=1e-8)`: X / (sqrt(sum X^2) + eps), over the last axis. */
export function l2norm(x: tf.Tensor, eps = 1e-8): tf.Tensor {
  return l2normLast(x, tf.scalar(eps));
}

/**
 * Softmax over the last axis from exp and sum kernels. (The wasm backend's fused Softmax is
 * accurate to only ~2e-6 relative, ten times worse than its Exp; that error reaches the
 * gradients of the reference cases.) Gradient: y ⊙ (g − Σ g⊙y).
 */
export const softmax = customOp((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const e = tf.exp(tf.sub(x, tf.max(x, -1, true)));
  const y = tf.div(e, tf.sum(e, -1, true));
  save([y]);
  return {
    value: y,
    gradFunc: (g: tf.Tensor, saved: tf.Tensor[]) => {
      const [sy] = saved;
      return [tf.mul(sy, tf.sub(g, tf.sum(tf.mul(g, sy), -1, true)))];
    },
  };
});

/**
 * Sigmoid whose gradient is evaluated as PyTorch's kernel does, (g · (1 − y)) · y. With scores
 * near 0.5 the hinge gradients of different pairs cancel almost exactly, so the rounding order
 * of this product is what the result is made of.
 */
export const sigmoid = customOp((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const y = tf.sigmoid(x);
  save([y]);
  return {
    value: y,
    gradFunc: (g: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(tf.mul(g, tf.sub(1, saved[0])), saved[0])],
  };
});

/** Softmax over the last axis with positions where `valid` is 0 excluded (additive mask). */
export function maskedSoftmax(x: tf.Tensor, valid?: tf.Tensor): tf.Tensor {
  if (!valid) return softmax(x);
  return softmax(tf.add(x, tf.mul(tf.sub(1, valid), -1e9)));
}

/**
 * The (out x in) matrix of PyTorch `F.interpolate(mode='linear', align_corners=False)` from
 * `inLen` to `outLen` positions, so that resizing is a matmul (and its gradient one too).
 */
export function interpMatrix(inLen: number, outLen: number): Float32Array {
  const m = new Float32Array(outLen * inLen);
  const scale = inLen / outLen;
  for (let o = 0; o < outLen; o++) {
    let src = scale * (o + 0.5) - 0.5;
    if (src < 0) src = 0;
    const i0 = Math.floor(src);
    const i1 = i0 < inLen - 1 ? i0 + 1 : i0;
    const l1 = src - i0;
    m[o * inLen + i0] += 1 - l1;
    m[o * inLen + i1] += l1;
  }
  return m;
}

/**
 * Resizes the position axis (axis 1) of x [B, L, D] to `outLen` as the official code does before
 * the projection head: linear interpolation when longer, centred zero padding when shorter.
 */
export function resizePositions(x: tf.Tensor3D, outLen: number): tf.Tensor3D {
  const [b, len, d] = x.shape;
  if (len === outLen) return x;
  if (len < outLen) {
    const p = outLen - len;
    return tf.pad(x, [
      [0, 0],
      [Math.floor(p / 2), p - Math.floor(p / 2)],
      [0, 0],
    ]);
  }
  const w = tf.tensor2d(interpMatrix(len, outLen), [outLen, len]);
  // [B, L, D] -> [L, B*D] so one 2-D matmul resizes every caption.
  const flat = tf.transpose(x, [1, 0, 2]).reshape([len, b * d]);
  return tf.transpose(mm(w, flat).reshape([outLen, b, d]), [1, 0, 2]) as tf.Tensor3D;
}

/**
 * One-hot rows as float32. (tfjs-backend-wasm 4.22's OneHot kernel writes integer bits into a
 * float32 output, so the float variant is never requested from a backend.)
 */
export function oneHotFloat(indices: tf.Tensor, depth: number): tf.Tensor {
  return tf.cast(tf.oneHot(indices, depth), "float32");
}

/** `torch.max(x, dim=-1)[0]` with the gradient routed to the first maximum only, as PyTorch does. */
export const maxLast = customOp((x: tf.Tensor, save: tf.GradSaveFunc) => {
  const idx = tf.argMax(x, -1);
  save([idx]);
  const n = x.shape[x.shape.length - 1]!;
  return {
    value: tf.max(x, -1),
    gradFunc: (dy: tf.Tensor, saved: tf.Tensor[]) => [tf.mul(oneHotFloat(saved[0], n), tf.expandDims(dy, -1))],
  };
});

/** Integer lengths to a [N, L] float mask (1 for positions < length). */
export function lengthMask(lengths: ArrayLike<number>, width: number): tf.Tensor2D {
  const m = new Float32Array(lengths.length * width);
  for (let i = 0; i < lengths.length; i++) {
    const l = Math.min(lengths[i], width);
    m.fill(1, i * width, i * width + l);
  }
  return tf.tensor2d(m, [lengths.length, width]);
}
