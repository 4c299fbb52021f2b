/*
 * Batched small matrix products with WebAssembly SIMD, for the shapes of SGRAF's graph
 * reasoning (thousands of (L+1) x (L+1) x sim_dim products per step), where tfjs-backend-wasm
 * falls back to a scalar loop for batched or transposed operands.
 *
 *   C[b] = op(A[b]) @ op(B[b]),  op(X) = X or X^T,  row-major float32.
 *
 * Build: bun scripts/build-native.ts (clang --target=wasm32 -msimd128 -O3, no libc).
 */
#include <wasm_simd128.h>

#define EXPORT(name) __attribute__((export_name(name)))

extern unsigned char __heap_base;

EXPORT("heap_base") unsigned int heap_base(void) { return (unsigned int)&__heap_base; }

/* C[m,n] = A[m,k] @ B[k,n]: rows of C accumulate rows of B scaled by A's entries. */
static void mm_nn(const float* a, const float* b, float* c, int m, int k, int n) {
  for (int i = 0; i < m; i++) {
    float* ci = c + i * n;
    int j = 0;
    for (; j + 4 <= n; j += 4) wasm_v128_store(ci + j, wasm_f32x4_splat(0.0f));
    for (; j < n; j++) ci[j] = 0.0f;
    const float* ai = a + i * k;
    for (int p = 0; p < k; p++) {
      const float s = ai[p];
      const v128_t vs = wasm_f32x4_splat(s);
      const float* bp = b + p * n;
      j = 0;
      for (; j + 4 <= n; j += 4) wasm_v128_store(ci + j, wasm_f32x4_add(wasm_v128_load(ci + j), wasm_f32x4_mul(vs, wasm_v128_load(bp + j))));
      for (; j < n; j++) ci[j] += s * bp[j];
    }
  }
}

/* C[m,n] = A[m,k] @ B[n,k]^T: dot products of contiguous rows. */
static void mm_nt(const float* a, const float* b, float* c, int m, int k, int n) {
  for (int i = 0; i < m; i++) {
    const float* ai = a + i * k;
    for (int j = 0; j < n; j++) {
      const float* bj = b + j * k;
      v128_t acc = wasm_f32x4_splat(0.0f);
      int p = 0;
      for (; p + 4 <= k; p += 4) acc = wasm_f32x4_add(acc, wasm_f32x4_mul(wasm_v128_load(ai + p), wasm_v128_load(bj + p)));
      float s = wasm_f32x4_extract_lane(acc, 0) + wasm_f32x4_extract_lane(acc, 1) + wasm_f32x4_extract_lane(acc, 2) + wasm_f32x4_extract_lane(acc, 3);
      for (; p < k; p++) s += ai[p] * bj[p];
      c[i * n + j] = s;
    }
  }
}

/* C[m,n] = A[k,m]^T @ B[k,n]. */
static void mm_tn(const float* a, const float* b, float* c, int m, int k, int n) {
  for (int i = 0; i < m * n; i++) c[i] = 0.0f;
  for (int p = 0; p < k; p++) {
    const float* ap = a + p * m;
    const float* bp = b + p * n;
    for (int i = 0; i < m; i++) {
      const float s = ap[i];
      const v128_t vs = wasm_f32x4_splat(s);
      float* ci = c + i * n;
      int j = 0;
      for (; j + 4 <= n; j += 4) wasm_v128_store(ci + j, wasm_f32x4_add(wasm_v128_load(ci + j), wasm_f32x4_mul(vs, wasm_v128_load(bp + j))));
      for (; j < n; j++) ci[j] += s * bp[j];
    }
  }
}

/* C[m,n] = A[k,m]^T @ B[n,k]^T = (B @ A)^T. */
static void mm_tt(const float* a, const float* b, float* c, int m, int k, int n) {
  for (int i = 0; i < m; i++)
    for (int j = 0; j < n; j++) {
      float s = 0.0f;
      for (int p = 0; p < k; p++) s += a[p * m + i] * b[j * k + p];
      c[i * n + j] = s;
    }
}

/*
 * batch products; A has batchA matrices and B batchB (1 or batch: broadcast), C has batch.
 * Shapes are those of op(A) = m x k and op(B) = k x n.
 */
EXPORT("bmm")
void bmm(const float* a, const float* b, float* c, int batch, int batchA, int batchB, int m, int k, int n, int transA, int transB) {
  for (int t = 0; t < batch; t++) {
    const float* at = a + (batchA == 1 ? 0 : t) * m * k;
    const float* bt = b + (batchB == 1 ? 0 : t) * k * n;
    float* ct = c + t * m * n;
    if (!transA && !transB) mm_nn(at, bt, ct, m, k, n);
    else if (!transA && transB) mm_nt(at, bt, ct, m, k, n);
    else if (transA && !transB) mm_tn(at, bt, ct, m, k, n);
    else mm_tt(at, bt, ct, m, k, n);
  }
}
