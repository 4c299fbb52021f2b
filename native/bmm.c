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
