/*
 * Batched small matrix products with WebAssembly SIMD, for the shapes of SGRAF's graph
 * reasoning (thousands of (L+1) x (L+1) x sim_dim products per step), where tfjs-backend-wasm
 * falls back to a scalar loop for batched or transposed operands.
 *
 *   C[b] = op(A[b]) @ op(B[b]),  op(X) = X or X^T,  row-major float32; a transposed B is
 *   transposed into `scratch` (k*n floats) first, so every product runs the register-blocked rows kernel.
 *
 * Build: bun scripts/build-native.ts (clang --target=wasm32 -msimd128 -O3, no libc).
 */
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(name)))

extern unsigned char __heap_base;

EXPORT("heap_base") unsigned int heap_base(void) { return (unsigned int)&__heap_base; }

/*
 * C[m,n] = sum_p A(i,p) B[p,n] with A(i,p) = a[i*sai + p*sap] (A or A^T) and B rows contiguous.
 * Register-blocked: 4 rows x 8 columns of C (8 vector accumulators) stay in registers over all p,
 * so each step does 8 multiply-adds for 2 vector and 4 scalar loads.
 */
static void mm_rows(const float* a, int sai, int sap, const float* b, float* c, int m, int k, int n) {
  int i = 0;
  for (; i + 4 <= m; i += 4) {
    int j = 0;
    for (; j + 8 <= n; j += 8) {
      v128_t c00 = wasm_f32x4_splat(0.0f), c01 = c00, c10 = c00, c11 = c00, c20 = c00, c21 = c00, c30 = c00, c31 = c00;
      for (int p = 0; p < k; p++) {
        const v128_t b0 = wasm_v128_load(b + p * n + j);
        const v128_t b1 = wasm_v128_load(b + p * n + j + 4);
        const float* ap = a + i * sai + p * sap;
        const v128_t a0 = wasm_f32x4_splat(ap[0]);
        const v128_t a1 = wasm_f32x4_splat(ap[sai]);
        const v128_t a2 = wasm_f32x4_splat(ap[2 * sai]);
        const v128_t a3 = wasm_f32x4_splat(ap[3 * sai]);
        c00 = wasm_f32x4_add(c00, wasm_f32x4_mul(a0, b0));
        c01 = wasm_f32x4_add(c01, wasm_f32x4_mul(a0, b1));
        c10 = wasm_f32x4_add(c10, wasm_f32x4_mul(a1, b0));
        c11 = wasm_f32x4_add(c11, wasm_f32x4_mul(a1, b1));
        c20 = wasm_f32x4_add(c20, wasm_f32x4_mul(a2, b0));
        c21 = wasm_f32x4_add(c21, wasm_f32x4_mul(a2, b1));
        c30 = wasm_f32x4_add(c30, wasm_f32x4_mul(a3, b0));
        c31 = wasm_f32x4_add(c31, wasm_f32x4_mul(a3, b1));
      }
      float* ci = c + i * n + j;
      wasm_v128_store(ci, c00);
      wasm_v128_store(ci + 4, c01);
      wasm_v128_store(ci + n, c10);
      wasm_v128_store(ci + n + 4, c11);
      wasm_v128_store(ci + 2 * n, c20);
      wasm_v128_store(ci + 2 * n + 4, c21);
      wasm_v128_store(ci + 3 * n, c30);
      wasm_v128_store(ci + 3 * n + 4, c31);
    }
    for (; j + 4 <= n; j += 4) {
      v128_t c0 = wasm_f32x4_splat(0.0f), c1 = c0, c2 = c0, c3 = c0;
      for (int p = 0; p < k; p++) {
        const v128_t b0 = wasm_v128_load(b + p * n + j);
        const float* ap = a + i * sai + p * sap;
        c0 = wasm_f32x4_add(c0, wasm_f32x4_mul(wasm_f32x4_splat(ap[0]), b0));
        c1 = wasm_f32x4_add(c1, wasm_f32x4_mul(wasm_f32x4_splat(ap[sai]), b0));
        c2 = wasm_f32x4_add(c2, wasm_f32x4_mul(wasm_f32x4_splat(ap[2 * sai]), b0));
        c3 = wasm_f32x4_add(c3, wasm_f32x4_mul(wasm_f32x4_splat(ap[3 * sai]), b0));
      }
      float* ci = c + i * n + j;
      wasm_v128_store(ci, c0);
      wasm_v128_store(ci + n, c1);
      wasm_v128_store(ci + 2 * n, c2);
      wasm_v128_store(ci + 3 * n, c3);
    }
    for (; j < n; j++) {
      float s0 = 0.0f, s1 = 0.0f, s2 = 0.0f, s3 = 0.0f;
      for (int p = 0; p < k; p++) {
        const float bp = b[p * n + j];
        const float* ap = a + i * sai + p * sap;
        s0 += ap[0] * bp;
        s1 += ap[sai] * bp;
        s2 += ap[2 * sai] * bp;
        s3 += ap[3 * sai] * bp;
      }
      c[i * n + j] = s0;
      c[(i + 1) * n + j] = s1;
      c[(i + 2) * n + j] = s2;
      c[(i + 3) * n + j] = s3;
    }
  }
  for (; i < m; i++) {
    int j = 0;
    for (; j + 4 <= n; j += 4) {
      v128_t acc = wasm_f32x4_splat(0.0f);
      for (int p = 0; p < k; p++) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_f32x4_splat(a[i * sai + p * sap]), wasm_v128_load(b + p * n + j)));
      wasm_v128_store(c + i * n + j, acc);
    }
    for (; j < n; j++) {
      float s = 0.0f;
      for (int p = 0; p < k; p++) s += a[i * sai + p * sap] * b[p * n + j];
      c[i * n + j] = s;
    }
  }
}

/* C[m,n] = A[m,k] @ B[k,n]. */
static void mm_nn(const float* a, const float* b, float* c, int m, int k, int n) { mm_rows(a, k, 1, b, c, m, k, n); }

/* C[m,n] = A[k,m]^T @ B[k,n]. */
static void mm_tn(const float* a, const float* b, float* c, int m, int k, int n) { mm_rows(a, 1, m, b, c, m, k, n); }

/* C[m,n] = A[m,k] @ B[n,k]^T by dot products of contiguous rows: best when k is long. */
static void mm_nt_dot(const float* a, const float* b, float* c, int m, int k, int n) {
  for (int i = 0; i < m; i++) {
    const float* ai = a + i * k;
    for (int j = 0; j < n; j++) {
      const float* bj = b + j * k;
      v128_t acc0 = wasm_f32x4_splat(0.0f), acc1 = acc0;
      int p = 0;
      for (; p + 8 <= k; p += 8) {
        acc0 = wasm_f32x4_add(acc0, wasm_f32x4_mul(wasm_v128_load(ai + p), wasm_v128_load(bj + p)));
        acc1 = wasm_f32x4_add(acc1, wasm_f32x4_mul(wasm_v128_load(ai + p + 4), wasm_v128_load(bj + p + 4)));
      }
      acc0 = wasm_f32x4_add(acc0, acc1);
      float s = wasm_f32x4_extract_lane(acc0, 0) + wasm_f32x4_extract_lane(acc0, 1) + wasm_f32x4_extract_lane(acc0, 2) + wasm_f32x4_extract_lane(acc0, 3);
      for (; p < k; p++) s += ai[p] * bj[p];
      c[i * n + j] = s;
    }
  }
}

/* dst[k,n] = src[n,k]^T (B operands given transposed are turned into rows first). */
static void transpose(const float* src, float* dst, int n, int k) {
  for (int j = 0; j < n; j++)
    for (int p = 0; p < k; p++) dst[p * n + j] = src[j * k + p];
}

/*
 * batch products; A has batchA matrices and B batchB (1 or batch: broadcast), C has batch.
 * Shapes are those of op(A) = m x k and op(B) = k x n.
 */
EXPORT("bmm")
void bmm(const float* a, const float* b, float* c, float* scratch, int batch, int batchA, int batchB, int m, int k, int n, int transA, int transB) {
  for (int t = 0; t < batch; t++) {
    const float* at = a + (batchA == 1 ? 0 : t) * m * k;
    const float* bt = b + (batchB == 1 ? 0 : t) * k * n;
    float* ct = c + t * m * n;
    if (transB && !transA && k >= 64) {
      mm_nt_dot(at, bt, ct, m, k, n);
      continue;
    }
    if (transB) {
      /* scratch holds k*n floats; a broadcast B is transposed once. */
      if (batchB != 1 || t == 0) transpose(bt, scratch, n, k);
      bt = scratch;
    }
    if (transA) mm_tn(at, bt, ct, m, k, n);
    else mm_nn(at, bt, ct, m, k, n);
  }
}

/*
 * Products with int8 weights that stay int8 in memory (the edge's quantized-resident weights):
 *
 *   y[i,o] = scale * sum_p x[i,p] w[o,p] + offset * sum_p x[i,p]
 *
 * x [m,k] float32, w [n,k] int8 row-major (nn.Linear's [out, in] layout), y [m,n]. A package's
 * uint8 weight q * s + min is stored as w = q - 128 with scale s and offset min + 128 s, so that
 * the two terms do not cancel for weights centred on zero. Each weight is widened to float32 in
 * registers, four at a time, and multiplied in float32: y equals the product with the dequantized
 * weights up to the order of the float32 additions.
 */
static inline v128_t widen4(const signed char* w) {
  v128_t b = wasm_v128_load32_zero(w);
  return wasm_f32x4_convert_i32x4(wasm_i32x4_extend_low_i16x8(wasm_i16x8_extend_low_i8x16(b)));
}

static inline float hsum(v128_t v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) + wasm_f32x4_extract_lane(v, 3);
}

EXPORT("qmm")
void qmm(const float* x, int m, int k, const signed char* w, int n, float* y, float scale, float offset) {
  int k4 = k & ~3;
  int i = 0;
  /* 4 rows x 2 outputs per tile: 8 accumulators, each weight vector widened once for 4 rows. */
  for (; i + 4 <= m; i += 4) {
    const float* x0 = x + i * k;
    const float* x1 = x0 + k;
    const float* x2 = x1 + k;
    const float* x3 = x2 + k;
    float rs[4];
    for (int r = 0; r < 4; r++) {
      const float* xr = x0 + r * k;
      v128_t acc = wasm_f32x4_splat(0.0f);
      int p = 0;
      for (; p < k4; p += 4) acc = wasm_f32x4_add(acc, wasm_v128_load(xr + p));
      float s = hsum(acc);
      for (; p < k; p++) s += xr[p];
      rs[r] = s;
    }
    int o = 0;
    for (; o + 2 <= n; o += 2) {
      const signed char* wa = w + o * k;
      const signed char* wb = wa + k;
      v128_t a0 = wasm_f32x4_splat(0.0f), a1 = a0, a2 = a0, a3 = a0, b0 = a0, b1 = a0, b2 = a0, b3 = a0;
      int p = 0;
      for (; p < k4; p += 4) {
        v128_t va = widen4(wa + p), vb = widen4(wb + p);
        v128_t v0 = wasm_v128_load(x0 + p), v1 = wasm_v128_load(x1 + p), v2 = wasm_v128_load(x2 + p), v3 = wasm_v128_load(x3 + p);
        a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(v0, va));
        a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(v1, va));
        a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(v2, va));
        a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(v3, va));
        b0 = wasm_f32x4_add(b0, wasm_f32x4_mul(v0, vb));
        b1 = wasm_f32x4_add(b1, wasm_f32x4_mul(v1, vb));
        b2 = wasm_f32x4_add(b2, wasm_f32x4_mul(v2, vb));
        b3 = wasm_f32x4_add(b3, wasm_f32x4_mul(v3, vb));
      }
      float sa[4] = {hsum(a0), hsum(a1), hsum(a2), hsum(a3)};
      float sb[4] = {hsum(b0), hsum(b1), hsum(b2), hsum(b3)};
      for (; p < k; p++) {
        float qa = (float)wa[p], qb = (float)wb[p];
        sa[0] += x0[p] * qa; sa[1] += x1[p] * qa; sa[2] += x2[p] * qa; sa[3] += x3[p] * qa;
        sb[0] += x0[p] * qb; sb[1] += x1[p] * qb; sb[2] += x2[p] * qb; sb[3] += x3[p] * qb;
      }
      for (int r = 0; r < 4; r++) {
        y[(i + r) * n + o] = scale * sa[r] + offset * rs[r];
        y[(i + r) * n + o + 1] = scale * sb[r] + offset * rs[r];
      }
    }
    for (; o < n; o++) {
      const signed char* wa = w + o * k;
      for (int r = 0; r < 4; r++) {
        const float* xr = x0 + r * k;
        v128_t acc = wasm_f32x4_splat(0.0f);
        int p = 0;
        for (; p < k4; p += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(xr + p), widen4(wa + p)));
        float s = hsum(acc);
        for (; p < k; p++) s += xr[p] * (float)wa[p];
        y[(i + r) * n + o] = scale * s + offset * rs[r];
      }
    }
  }
  /* Remaining rows (a single query's matrix-vector products): 4 outputs per tile. */
  for (; i < m; i++) {
    const float* xr = x + i * k;
    v128_t racc = wasm_f32x4_splat(0.0f);
    int p = 0;
    for (; p < k4; p += 4) racc = wasm_f32x4_add(racc, wasm_v128_load(xr + p));
    float rsum = hsum(racc);
    for (; p < k; p++) rsum += xr[p];
    int o = 0;
    for (; o + 4 <= n; o += 4) {
      const signed char* w0 = w + o * k;
      const signed char* w1 = w0 + k;
      const signed char* w2 = w1 + k;
      const signed char* w3 = w2 + k;
      v128_t a0 = wasm_f32x4_splat(0.0f), a1 = a0, a2 = a0, a3 = a0;
      for (p = 0; p < k4; p += 4) {
        v128_t v = wasm_v128_load(xr + p);
        a0 = wasm_f32x4_add(a0, wasm_f32x4_mul(v, widen4(w0 + p)));
        a1 = wasm_f32x4_add(a1, wasm_f32x4_mul(v, widen4(w1 + p)));
        a2 = wasm_f32x4_add(a2, wasm_f32x4_mul(v, widen4(w2 + p)));
        a3 = wasm_f32x4_add(a3, wasm_f32x4_mul(v, widen4(w3 + p)));
      }
      float s0 = hsum(a0), s1 = hsum(a1), s2 = hsum(a2), s3 = hsum(a3);
      for (; p < k; p++) {
        s0 += xr[p] * (float)w0[p]; s1 += xr[p] * (float)w1[p]; s2 += xr[p] * (float)w2[p]; s3 += xr[p] * (float)w3[p];
      }
      y[i * n + o] = scale * s0 + offset * rsum;
      y[i * n + o + 1] = scale * s1 + offset * rsum;
      y[i * n + o + 2] = scale * s2 + offset * rsum;
      y[i * n + o + 3] = scale * s3 + offset * rsum;
    }
    for (; o < n; o++) {
      const signed char* wo = w + o * k;
      v128_t acc = wasm_f32x4_splat(0.0f);
      for (p = 0; p < k4; p += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(xr + p), widen4(wo + p)));
      float s = hsum(acc);
      for (; p < k; p++) s += xr[p] * (float)wo[p];
      y[i * n + o] = scale * s + offset * rsum;
    }
  }
}
