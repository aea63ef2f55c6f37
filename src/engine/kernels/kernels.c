// The engine's own wasm SIMD kernels, run on tfjs-wasm's heap (the module imports its memory).
// Build: scripts/build-kernels.sh (clang + lld, wasm32, -msimd128) writes kernels-wasm.ts, with one
// build for tfjs-wasm's plain memory and one for the shared memory of its multi-threaded build (where
// several threads run these functions at once on disjoint outputs: nothing here is shared state).
//
// Rules that keep this module from touching memory it does not own: no static data, no globals,
// nothing on the linear-memory stack (every buffer comes from the caller's scratch). The build
// script checks the output for a data section and for uses of the stack pointer.
#include <stddef.h>
#include <wasm_simd128.h>

#define MR 4    // rows of the micro-kernel's output tile
#define NR 8    // its columns (two v128)
#define KC 256  // depth of one packed block (a B panel of KC x NR floats stays in L1)
#define MC 128  // rows of one packed block of A
#define NC 384  // columns of one packed block of B

// f32x4.relaxed_madd: a * b + c, fused where the CPU has FMA (about 20% faster products here).
// clang 14 emits it under the relaxed-SIMD proposal's old opcode; build-kernels.sh rewrites that to
// the standardised one.
#define MADD(a, b, c) __builtin_wasm_fma_f32x4(a, b, c)

// clang may turn the copy loops into calls of these.
void *memset(void *dst, int c, size_t n) {
  unsigned char *p = dst;
  while (n--) *p++ = (unsigned char)c;
  return dst;
}
void *memcpy(void *dst, const void *src, size_t n) {
  unsigned char *d = dst;
  const unsigned char *s = src;
  while (n--) *d++ = *s++;
  return dst;
}

// Element (r, c) of a matrix stored row-major with leading dimension ld, or its transpose.
static inline float at(const float *m, int ld, int trans, int r, int c) {
  return trans ? m[(size_t)c * ld + r] : m[(size_t)r * ld + c];
}

// A block [mc x kc] of op(A) into MR-row panels: panel p holds, for each k, rows p*MR..p*MR+3.
static void pack_a(const float *a, int lda, int trans, int i0, int k0, int mc, int kc, float *dst) {
  for (int p = 0; p < mc; p += MR) {
    int rows = mc - p < MR ? mc - p : MR;
    for (int k = 0; k < kc; k++) {
      for (int r = 0; r < MR; r++) *dst++ = r < rows ? at(a, lda, trans, i0 + p + r, k0 + k) : 0.f;
    }
  }
}

// A block [kc x nc] of op(B) into NR-column panels: panel q holds, for each k, columns q*NR..q*NR+7.
static void pack_b(const float *b, int ldb, int trans, int k0, int j0, int kc, int nc, float *dst) {
  for (int q = 0; q < nc; q += NR) {
    int cols = nc - q < NR ? nc - q : NR;
    if (!trans && cols == NR) {
      for (int k = 0; k < kc; k++) {
        const float *src = b + (size_t)(k0 + k) * ldb + j0 + q;
        wasm_v128_store(dst, wasm_v128_load(src));
        wasm_v128_store(dst + 4, wasm_v128_load(src + 4));
        dst += NR;
      }
    } else {
      for (int k = 0; k < kc; k++) {
        for (int c = 0; c < NR; c++) *dst++ = c < cols ? at(b, ldb, trans, k0 + k, j0 + q + c) : 0.f;
      }
    }
  }
}

// tile[MR x NR] = packed A panel . packed B panel over kc.
static void micro_kernel(int kc, const float *ap, const float *bp, float *tile) {
  v128_t c00 = wasm_f32x4_splat(0.f), c01 = c00, c10 = c00, c11 = c00;
  v128_t c20 = c00, c21 = c00, c30 = c00, c31 = c00;
  for (int k = 0; k < kc; k++) {
    v128_t b0 = wasm_v128_load(bp), b1 = wasm_v128_load(bp + 4);
    v128_t x = wasm_v128_load32_splat(ap);
    c00 = MADD(x, b0, c00);
    c01 = MADD(x, b1, c01);
    x = wasm_v128_load32_splat(ap + 1);
    c10 = MADD(x, b0, c10);
    c11 = MADD(x, b1, c11);
    x = wasm_v128_load32_splat(ap + 2);
    c20 = MADD(x, b0, c20);
    c21 = MADD(x, b1, c21);
    x = wasm_v128_load32_splat(ap + 3);
    c30 = MADD(x, b0, c30);
    c31 = MADD(x, b1, c31);
    ap += MR;
    bp += NR;
  }
  wasm_v128_store(tile, c00);
  wasm_v128_store(tile + 4, c01);
  wasm_v128_store(tile + 8, c10);
  wasm_v128_store(tile + 12, c11);
  wasm_v128_store(tile + 16, c20);
  wasm_v128_store(tile + 20, c21);
  wasm_v128_store(tile + 24, c30);
  wasm_v128_store(tile + 28, c31);
}

// C[i, j] = (first ? (accumulate ? C : 0) + bias[j] : C) + alpha * tile, for the rows x cols in range.
static void store_tile(const float *tile, float *c, int ldc, int rows, int cols, float alpha, int first,
                       int accumulate, const float *bias) {
  v128_t va = wasm_f32x4_splat(alpha);
  for (int r = 0; r < rows; r++) {
    float *row = c + (size_t)r * ldc;
    const float *t = tile + r * NR;
    if (cols == NR) {
      v128_t v0 = wasm_f32x4_mul(va, wasm_v128_load(t)), v1 = wasm_f32x4_mul(va, wasm_v128_load(t + 4));
      if (!first || accumulate) {
        v0 = wasm_f32x4_add(v0, wasm_v128_load(row));
        v1 = wasm_f32x4_add(v1, wasm_v128_load(row + 4));
      }
      if (first && bias) {
        v0 = wasm_f32x4_add(v0, wasm_v128_load(bias));
        v1 = wasm_f32x4_add(v1, wasm_v128_load(bias + 4));
      }
      wasm_v128_store(row, v0);
      wasm_v128_store(row + 4, v1);
    } else {
      for (int j = 0; j < cols; j++) {
        float v = alpha * t[j];
        if (!first || accumulate) v += row[j];
        if (first && bias) v += bias[j];
        row[j] = v;
      }
    }
  }
}

// op(B) [K x N] packed for gemm_packed: column blocks of NC (padded to NR), each as depth blocks of
// KC, each as NR-column panels. Block (j0, k0) starts at K * j0 + k0 * roundup(nc, NR).
int packed_b_floats(int k, int n) { return k * ((n + NR - 1) / NR * NR); }

void pack_b_all(const float *b, int ldb, int transB, int k, int n, float *dst) {
  for (int j0 = 0; j0 < n; j0 += NC) {
    int nc = n - j0 < NC ? n - j0 : NC;
    int ncp = (nc + NR - 1) / NR * NR;
    for (int k0 = 0; k0 < k; k0 += KC) {
      int kc = k - k0 < KC ? k - k0 : KC;
      pack_b(b, ldb, transB, k0, j0, kc, nc, dst + (size_t)k * j0 + (size_t)k0 * ncp);
    }
  }
}

// C[M x N] = alpha * op(A) op(B) + bias (broadcast over rows; may be 0) (+ C when accumulate), with
// op(B) packed by pack_b_all. op(A) is M x K: A row-major with leading dimension lda, or (transA)
// A^T of a K x M matrix. scratch: gemm_scratch_floats() floats.
void gemm_packed(int M, int N, int K, float alpha, const float *a, int lda, int transA, const float *bpacked,
                 float *c, int ldc, const float *bias, int accumulate, float *scratch) {
  float *apack = scratch;
  float *tile = apack + MC * KC;
  if (K == 0) {
    for (int i = 0; i < M; i++)
      for (int j = 0; j < N; j++)
        c[(size_t)i * ldc + j] = (accumulate ? c[(size_t)i * ldc + j] : 0.f) + (bias ? bias[j] : 0.f);
    return;
  }
  for (int j0 = 0; j0 < N; j0 += NC) {
    int nc = N - j0 < NC ? N - j0 : NC;
    int ncp = (nc + NR - 1) / NR * NR;
    for (int k0 = 0; k0 < K; k0 += KC) {
      int kc = K - k0 < KC ? K - k0 : KC;
      const float *bpack = bpacked + (size_t)K * j0 + (size_t)k0 * ncp;
      for (int i0 = 0; i0 < M; i0 += MC) {
        int mc = M - i0 < MC ? M - i0 : MC;
        pack_a(a, lda, transA, i0, k0, mc, kc, apack);
        for (int q = 0; q < nc; q += NR) {
          int cols = nc - q < NR ? nc - q : NR;
          const float *bp = bpack + (size_t)q * kc;
          for (int p = 0; p < mc; p += MR) {
            int rows = mc - p < MR ? mc - p : MR;
            micro_kernel(kc, apack + (size_t)p * kc, bp, tile);
            store_tile(tile, c + (size_t)(i0 + p) * ldc + j0 + q, ldc, rows, cols, alpha, k0 == 0, accumulate,
                       bias ? bias + j0 + q : 0);
          }
        }
      }
    }
  }
}

// C[M x N] = alpha * op(A) op(B) + bias (+ C when accumulate), packing B here block by block (into
// scratch: gemm_scratch_floats() floats).
void gemm(int M, int N, int K, float alpha, const float *a, int lda, int transA, const float *b, int ldb,
          int transB, float *c, int ldc, const float *bias, int accumulate, float *scratch) {
  float *bpacked = scratch + MC * KC + MR * NR;
  if (K == 0) {
    gemm_packed(M, N, 0, alpha, a, lda, transA, bpacked, c, ldc, bias, accumulate, scratch);
    return;
  }
  for (int j0 = 0; j0 < N; j0 += NC) {
    int nc = N - j0 < NC ? N - j0 : NC;
    for (int k0 = 0; k0 < K; k0 += KC) {
      int kc = K - k0 < KC ? K - k0 : KC;
      pack_b_all(transB ? b + (size_t)j0 * ldb + k0 : b + (size_t)k0 * ldb + j0, ldb, transB, kc, nc, bpacked);
      gemm_packed(M, nc, kc, alpha, transA ? a + (size_t)k0 * lda : a + k0, lda, transA, bpacked, c + j0, ldc,
                  k0 == 0 && bias ? bias + j0 : 0, k0 > 0 || accumulate, scratch);
    }
  }
}

int gemm_scratch_floats(void) { return MC * KC + MR * NR + KC * NC; }

// Sum of four lanes.
static inline float hsum(v128_t v) {
  return wasm_f32x4_extract_lane(v, 0) + wasm_f32x4_extract_lane(v, 1) + wasm_f32x4_extract_lane(v, 2) +
         wasm_f32x4_extract_lane(v, 3);
}

// sum_j a[j] * b[j] (b may be 0: sum_j a[j]), four lanes at a time.
static inline float dot(const float *a, const float *b, int n) {
  v128_t acc = wasm_f32x4_splat(0.f);
  int j = 0;
  for (; j + 4 <= n; j += 4) {
    v128_t x = wasm_v128_load(a + j);
    acc = b ? MADD(x, wasm_v128_load(b + j), acc) : wasm_f32x4_add(acc, x);
  }
  float sum = hsum(acc);
  for (; j < n; j++) sum += b ? a[j] * b[j] : a[j];
  return sum;
}

// Softmax backward of attention, in place over n rows of length t: ds = scale * p * (dp - sum_j dp_j p_j).
static void softmax_backward(const float *p, float *dp, int n, int t, float scale) {
  for (int r = 0; r < n; r++) {
    const float *pr = p + (size_t)r * t;
    float *dr = dp + (size_t)r * t;
    float d = dot(pr, dr, t);
    for (int j = 0; j < t; j++) dr[j] = scale * pr[j] * (dr[j] - d);
  }
}

// The constants of the element-wise kernels, as a table the caller passes (kernel_constants fills
// it). Why not literals: clang rematerialises v128 constants inside loops, and V8 compiles each
// v128.const there to several instructions, which made these loops about three times slower.
enum {
  K_EXP_MAX, K_EXP_MIN, K_LOG2E, K_ROUND, K_LN2_HI, K_LN2_LO, K_E5, K_E4, K_E3, K_E2, K_E1, K_E0, K_ONE, K_EXP_BIAS,
  K_ERF_CLAMP, K_A13, K_A11, K_A9, K_A7, K_A5, K_A3, K_A1, K_B8, K_B6, K_B4, K_B2, K_B0,
  K_HALF, K_SQRT1_2, K_MINUS_HALF, K_INV_SQRT_2PI, K_COUNT
};

int kernel_constants_count(void) { return K_COUNT; }

void kernel_constants(float *k) {
  k[K_EXP_MAX] = 88.37626f;
  k[K_EXP_MIN] = -87.33654f;
  k[K_LOG2E] = 1.44269504088896341f;
  k[K_ROUND] = 12582912.f;  // 1.5 * 2^23: adding it rounds to an integer held in the low bits
  k[K_LN2_HI] = 0.693359375f;
  k[K_LN2_LO] = -2.12194440e-4f;
  k[K_E5] = 1.9875691500e-4f;  // Cephes' expf polynomial
  k[K_E4] = 1.3981999507e-3f;
  k[K_E3] = 8.3334519073e-3f;
  k[K_E2] = 4.1665795894e-2f;
  k[K_E1] = 1.6666665459e-1f;
  k[K_E0] = 5.0000001201e-1f;
  k[K_ONE] = 1.f;
  ((int *)k)[K_EXP_BIAS] = 127 - 0x4B400000;
  k[K_ERF_CLAMP] = 4.f;
  k[K_A13] = -2.72614225801306e-10f;  // Eigen's float erf: x P(x^2) / Q(x^2)
  k[K_A11] = 2.77068142495902e-08f;
  k[K_A9] = -2.10102402082508e-06f;
  k[K_A7] = -5.69250639462346e-05f;
  k[K_A5] = -7.34990630326855e-04f;
  k[K_A3] = -2.95459980854025e-03f;
  k[K_A1] = -1.60960333262415e-02f;
  k[K_B8] = -1.45660718464996e-05f;
  k[K_B6] = -2.13374055278905e-04f;
  k[K_B4] = -1.68282697438203e-03f;
  k[K_B2] = -7.37332916720468e-03f;
  k[K_B0] = -1.42647390514189e-02f;
  k[K_HALF] = 0.5f;
  k[K_SQRT1_2] = 0.70710678118654752f;
  k[K_MINUS_HALF] = -0.5f;
  k[K_INV_SQRT_2PI] = 0.39894228040143268f;
}

typedef struct {
  v128_t v[K_COUNT];
} Consts;

static inline Consts load_consts(const float *k) {
  Consts c;
  for (int i = 0; i < K_COUNT; i++) c.v[i] = wasm_v128_load32_splat(k + i);
  return c;
}

// exp(x) for four floats: x = n ln2 + r, |r| <= ln2 / 2; exp(r) by Cephes' expf polynomial (about 1 ulp);
// 2^n through the exponent bits (inputs clamped to [-87.3, 88.4]).
static inline v128_t exp4(v128_t x, const Consts *c) {
  const v128_t *k = c->v;
  x = wasm_f32x4_max(wasm_f32x4_min(x, k[K_EXP_MAX]), k[K_EXP_MIN]);
  v128_t t = MADD(x, k[K_LOG2E], k[K_ROUND]);
  v128_t n = wasm_f32x4_sub(t, k[K_ROUND]);
  v128_t r = wasm_f32x4_sub(x, wasm_f32x4_mul(n, k[K_LN2_HI]));
  r = wasm_f32x4_sub(r, wasm_f32x4_mul(n, k[K_LN2_LO]));
  v128_t p = MADD(k[K_E5], r, k[K_E4]);
  p = MADD(p, r, k[K_E3]);
  p = MADD(p, r, k[K_E2]);
  p = MADD(p, r, k[K_E1]);
  p = MADD(p, r, k[K_E0]);
  p = wasm_f32x4_add(MADD(p, wasm_f32x4_mul(r, r), r), k[K_ONE]);
  // 2^n = (n + 127) << 23, n + 0x4B400000 being t's bits.
  return wasm_f32x4_mul(p, wasm_i32x4_shl(wasm_i32x4_add(t, k[K_EXP_BIAS]), 23));
}

// erf(x) for four floats: x P(x^2) / Q(x^2) on [-4, 4] (Eigen's float erf; a few ulp), +-1 beyond.
static inline v128_t erf4(v128_t x, const Consts *c) {
  const v128_t *k = c->v;
  x = wasm_f32x4_max(wasm_f32x4_min(x, k[K_ERF_CLAMP]), wasm_f32x4_neg(k[K_ERF_CLAMP]));
  v128_t x2 = wasm_f32x4_mul(x, x);
  v128_t p = MADD(k[K_A13], x2, k[K_A11]);
  p = MADD(p, x2, k[K_A9]);
  p = MADD(p, x2, k[K_A7]);
  p = MADD(p, x2, k[K_A5]);
  p = MADD(p, x2, k[K_A3]);
  p = MADD(p, x2, k[K_A1]);
  p = wasm_f32x4_mul(p, x);
  v128_t q = MADD(k[K_B8], x2, k[K_B6]);
  q = MADD(q, x2, k[K_B4]);
  q = MADD(q, x2, k[K_B2]);
  q = MADD(q, x2, k[K_B0]);
  return wasm_f32x4_div(p, q);
}

// Up to four floats from p (the rest 0), and back: the tails of the element-wise loops.
static inline v128_t load_partial(const float *p, int count) {
  return wasm_f32x4_make(p[0], count > 1 ? p[1] : 0.f, count > 2 ? p[2] : 0.f, 0.f);
}
static inline void store_partial(float *p, v128_t v, int count) {
  p[0] = wasm_f32x4_extract_lane(v, 0);
  if (count > 1) p[1] = wasm_f32x4_extract_lane(v, 1);
  if (count > 2) p[2] = wasm_f32x4_extract_lane(v, 2);
}

// Phi(x) = (1 + erf(x / sqrt 2)) / 2 and phi(x) = exp(-x^2 / 2) / sqrt(2 pi).
static inline v128_t gelu_cdf4(v128_t x, const Consts *c) {
  const v128_t *k = c->v;
  return MADD(erf4(wasm_f32x4_mul(x, k[K_SQRT1_2]), c), k[K_HALF], k[K_HALF]);
}
static inline v128_t gelu_pdf4(v128_t x, const Consts *c) {
  const v128_t *k = c->v;
  return wasm_f32x4_mul(exp4(wasm_f32x4_mul(wasm_f32x4_mul(x, x), k[K_MINUS_HALF]), c), k[K_INV_SQRT_2PI]);
}

// Exact GELU: y = x Phi(x). k: the kernel_constants table.
void gelu_forward(const float *x, float *y, int n, const float *k) {
  Consts c = load_consts(k);
  for (int i = 0; i < n; i += 4) {
    int count = n - i < 4 ? n - i : 4;
    v128_t v = count == 4 ? wasm_v128_load(x + i) : load_partial(x + i, count);
    v128_t value = wasm_f32x4_mul(v, gelu_cdf4(v, &c));
    if (count == 4) wasm_v128_store(y + i, value);
    else store_partial(y + i, value, count);
  }
}

// GELU and its slope Phi(x) + x phi(x) (for a backward pass that is then dy * slope).
void gelu_forward_slope(const float *x, float *y, float *slope, int n, const float *k) {
  Consts c = load_consts(k);
  for (int i = 0; i < n; i += 4) {
    int count = n - i < 4 ? n - i : 4;
    v128_t v = count == 4 ? wasm_v128_load(x + i) : load_partial(x + i, count);
    v128_t cdf = gelu_cdf4(v, &c);
    v128_t value = wasm_f32x4_mul(v, cdf);
    v128_t s = MADD(v, gelu_pdf4(v, &c), cdf);
    if (count == 4) {
      wasm_v128_store(y + i, value);
      wasm_v128_store(slope + i, s);
    } else {
      store_partial(y + i, value, count);
      store_partial(slope + i, s, count);
    }
  }
}

// LayerNorm over rows of length cols (biased variance, as PyTorch): xhat = (x - mean) * rstd,
// rstd = 1 / sqrt(var + eps), y = xhat * w + b. Keeps xhat [rows x cols] and rstd [rows] for the
// backward pass.
void layer_norm_forward(const float *x, const float *w, const float *b, float *y, float *xhat, float *rstd,
                        int rows, int cols, float eps) {
  for (int r = 0; r < rows; r++) {
    const float *xr = x + (size_t)r * cols;
    float mean = dot(xr, 0, cols) / (float)cols;
    v128_t vmean = wasm_f32x4_splat(mean), acc = wasm_f32x4_splat(0.f);
    int j = 0;
    for (; j + 4 <= cols; j += 4) {
      v128_t c = wasm_f32x4_sub(wasm_v128_load(xr + j), vmean);
      acc = MADD(c, c, acc);
    }
    float sq = hsum(acc);
    for (; j < cols; j++) sq += (xr[j] - mean) * (xr[j] - mean);
    float s = 1.f / __builtin_sqrtf(sq / (float)cols + eps);
    rstd[r] = s;
    float *hr = xhat + (size_t)r * cols;
    float *yr = y + (size_t)r * cols;
    for (int j = 0; j < cols; j++) {
      float h = (xr[j] - mean) * s;
      hr[j] = h;
      yr[j] = h * w[j] + b[j];
    }
  }
}

// dx = rstd * (g - mean(g) - xhat * mean(g * xhat)), g = dy * w.
void layer_norm_backward(const float *dy, const float *xhat, const float *rstd, const float *w, float *dx, int rows,
                         int cols) {
  for (int r = 0; r < rows; r++) {
    const float *dr = dy + (size_t)r * cols;
    const float *hr = xhat + (size_t)r * cols;
    v128_t vg = wasm_f32x4_splat(0.f), vgh = vg;
    int j = 0;
    for (; j + 4 <= cols; j += 4) {
      v128_t g = wasm_f32x4_mul(wasm_v128_load(dr + j), wasm_v128_load(w + j));
      vg = wasm_f32x4_add(vg, g);
      vgh = MADD(g, wasm_v128_load(hr + j), vgh);
    }
    float sg = hsum(vg), sgh = hsum(vgh);
    for (; j < cols; j++) {
      float g = dr[j] * w[j];
      sg += g;
      sgh += g * hr[j];
    }
    float mg = sg / (float)cols, mgh = sgh / (float)cols, s = rstd[r];
    float *xr = dx + (size_t)r * cols;
    for (int j = 0; j < cols; j++) xr[j] = s * (dr[j] * w[j] - mg - hr[j] * mgh);
  }
}

// Column sums: dw[j] = sum_r dy[r, j] * xhat[r, j], db[j] = sum_r dy[r, j].
void layer_norm_param_grads(const float *dy, const float *xhat, float *dw, float *db, int rows, int cols) {
  for (int j = 0; j < cols; j++) dw[j] = db[j] = 0.f;
  for (int r = 0; r < rows; r++) {
    const float *dr = dy + (size_t)r * cols;
    const float *hr = xhat + (size_t)r * cols;
    for (int j = 0; j < cols; j++) {
      dw[j] += dr[j] * hr[j];
      db[j] += dr[j];
    }
  }
}

// One (sample, head) of the attention backward pass (see attention.ts for the layout): p [T x T] the
// probabilities; q, k, v [T x d] with leading dimension ld (in qkv), dout [T x d] with ldo; writes
// dv = p^T dout, dq = scale ds k, dk = scale ds^T q, where ds = p * (dp - rowsum(dp * p)),
// dp = dout v^T. dp: T x T floats of the caller's.
void attention_backward_head(const float *p, const float *q, const float *k, const float *v, const float *dout,
                             int ldo, float *gq, float *gk, float *gv, int ld, int t, int d, float scale, float *dp,
                             float *scratch) {
  gemm(t, d, t, 1.f, p, t, 1, dout, ldo, 0, gv, ld, 0, 0, scratch);
  gemm(t, t, d, 1.f, dout, ldo, 0, v, ld, 1, dp, t, 0, 0, scratch);
  softmax_backward(p, dp, t, t, scale);
  gemm(t, d, t, 1.f, dp, t, 0, k, ld, 0, gq, ld, 0, 0, scratch);
  gemm(t, d, t, 1.f, dp, t, 1, q, ld, 0, gk, ld, 0, 0, scratch);
}

// Softmax over rows of length cols: y = exp(x - max) / sum (y may be x). k: kernel_constants.
static void softmax_rows(const float *x, float *y, int rows, int cols, const float *k) {
  Consts c = load_consts(k);
  for (int r = 0; r < rows; r++) {
    const float *in = x + (size_t)r * cols;
    float *out = y + (size_t)r * cols;
    v128_t vmax = wasm_f32x4_splat(in[0]);
    int m = 0;
    for (; m + 4 <= cols; m += 4) vmax = wasm_f32x4_max(vmax, wasm_v128_load(in + m));
    for (; m < cols; m++) vmax = wasm_f32x4_max(vmax, wasm_f32x4_splat(in[m]));
    float max = wasm_f32x4_extract_lane(vmax, 0);
    for (int lane = 1; lane < 4; lane++) {
      float v = lane == 1 ? wasm_f32x4_extract_lane(vmax, 1)
                          : lane == 2 ? wasm_f32x4_extract_lane(vmax, 2) : wasm_f32x4_extract_lane(vmax, 3);
      max = v > max ? v : max;
    }
    vmax = wasm_f32x4_splat(max);
    v128_t vsum = wasm_f32x4_splat(0.f);
    int j = 0;
    for (; j + 4 <= cols; j += 4) {
      v128_t e = exp4(wasm_f32x4_sub(wasm_v128_load(in + j), vmax), &c);
      wasm_v128_store(out + j, e);
      vsum = wasm_f32x4_add(vsum, e);
    }
    if (j < cols) {
      v128_t e = exp4(wasm_f32x4_sub(load_partial(in + j, cols - j), vmax), &c);
      // lanes past the row's end hold exp(0 - max): keep them out of the sum
      e = wasm_v128_and(e, wasm_i32x4_lt(wasm_i32x4_make(0, 1, 2, 3), wasm_i32x4_splat(cols - j)));
      store_partial(out + j, e, cols - j);
      vsum = wasm_f32x4_add(vsum, e);
    }
    float sum = wasm_f32x4_extract_lane(vsum, 0) + wasm_f32x4_extract_lane(vsum, 1) +
                wasm_f32x4_extract_lane(vsum, 2) + wasm_f32x4_extract_lane(vsum, 3);
    v128_t inv = wasm_f32x4_splat(1.f / sum);
    for (j = 0; j + 4 <= cols; j += 4) wasm_v128_store(out + j, wasm_f32x4_mul(wasm_v128_load(out + j), inv));
    for (; j < cols; j++) out[j] *= 1.f / sum;
  }
}

// Column sums of a [rows x cols] block into out[cols] (bias gradients).
void column_sums(const float *x, int rows, int cols, int ld, float *out) {
  for (int j = 0; j < cols; j++) out[j] = 0.f;
  for (int r = 0; r < rows; r++) {
    const float *row = x + (size_t)r * ld;
    for (int j = 0; j < cols; j++) out[j] += row[j];
  }
}

// One (sample, head) of attention's forward pass: p [T x T] = softmax(scale q k^T) by rows, with
// q, k [T x d] at leading dimension ld (in qkv). The softmax runs while the block is in cache.
void attention_probabilities_head(const float *q, const float *k, int ld, float *p, int t, int d, float scale,
                                  float *scratch, const float *constants) {
  gemm(t, t, d, scale, q, ld, 0, k, ld, 1, p, t, 0, 0, scratch);
  softmax_rows(p, p, t, t, constants);
}
