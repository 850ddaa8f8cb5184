/* Native kernels of neurips18.lowprec: rounding float32 to a narrower binary format
   (nearest-even or stochastic) and sequential accumulation with a rounding after every
   addition. Bit for bit the computation of neurips18/lowprec/quantize.py (same bit
   manipulation, same counter-based hash); plain C11, no Python or PyTorch headers. Built
   at first use by neurips18._native (no -ffast-math: the roundings must be exact). */

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

typedef struct {
    uint32_t shift, half, lsbm, keep, low, minn, maxb, ovfb;
    int32_t subb;
    uint32_t subok, man;
    float q;
} P;

static P load(const int32_t *c, float q) {
    P p;
    p.shift = (uint32_t)c[0]; p.half = (uint32_t)c[1]; p.lsbm = (uint32_t)c[2];
    p.keep = (uint32_t)c[3]; p.low = (uint32_t)c[4]; p.minn = (uint32_t)c[5];
    p.maxb = (uint32_t)c[6]; p.ovfb = (uint32_t)c[7]; p.subb = c[8];
    p.subok = (uint32_t)c[9]; p.man = 23u - p.shift; p.q = q;
    return p;
}

static inline uint32_t f2u(float x) { uint32_t u; memcpy(&u, &x, 4); return u; }
static inline float u2f(uint32_t u) { float x; memcpy(&x, &u, 4); return x; }

static inline uint32_t mix(uint32_t h) {
    h = ((h >> 16) ^ h) * 0x45D9F3Bu;
    h = ((h >> 16) ^ h) * 0x45D9F3Bu;
    return (h >> 16) ^ h;
}

/* Branch-free select (lets the compiler vectorise the loops). */
static inline uint32_t sel(uint32_t cond, uint32_t x, uint32_t y) {
    uint32_t m = 0u - cond;  /* cond is 0 or 1 */
    return (x & m) | (y & ~m);
}

/* The normal-range result for |x| with bits a: add the rounding increment (half an ulp plus
   the tie-to-even bit, or the noise), drop the low bits, map overflow to the format's choice. */
static inline __attribute__((always_inline)) uint32_t rnd_bits(uint32_t a, const P *p, int sto,
                                                               uint32_t noise) {
    uint32_t r = sto ? ((a + (noise & p->low)) & p->keep)
                     : ((a + p->half + ((a >> p->shift) & p->lsbm)) & p->keep);
    return sel(r > p->maxb, p->ovfb, r);
}

/* Round x to the format; sto selects stochastic rounding with 31-bit noise. Both the
   normal and the subnormal result are computed, mirroring quantize._kernel. */
static inline __attribute__((always_inline)) float rnd(float x, const P *p, int sto,
                                                       uint32_t noise) {
    uint32_t b = f2u(x);
    uint32_t a = b & 0x7FFFFFFFu;
    uint32_t r = rnd_bits(a, p, sto, noise);
    int32_t e = (int32_t)(a >> 23);
    int32_t e1 = e + (int32_t)(e == 0);
    uint32_t sig = (a & 0x7FFFFFu) | ((uint32_t)(e > 0) << 23);
    int32_t s = p->subb - e1;
    int32_t z = (int32_t)(s < 1);  /* s == 0 only for FP32 itself: shift 2*sig by 1 */
    sig <<= z;
    s += z;
    int32_t sc = s < 1 ? 1 : s;
    sc = sc > 30 ? 30 : sc;
    uint32_t n;
    if (sto) {
        int32_t extra = s - sc;
        extra = extra < 0 ? 0 : extra;
        extra = extra > 31 ? 31 : extra;
        n = ((sig >> extra) + (noise & ((1u << sc) - 1u))) >> sc;
    } else {
        n = (sig + ((1u << (sc - 1)) - 1u) + ((sig >> sc) & 1u)) >> sc;
    }
    uint32_t keepn = p->subok | (n >> p->man);
    keepn = keepn > 1u ? 1u : keepn;
    n = n * keepn;
    uint32_t sub = f2u((float)(int32_t)n * p->q);
    r = sel(a < p->minn, sub, r);
    return u2f(sel(a >= 0x7F800000u, b, (b & 0x80000000u) | r));
}

/* The same rounding for inputs that are zero or normal with a normal result path: enough
   for most data, and about half the work. */
static inline __attribute__((always_inline)) float rnd_normal(float x, const P *p, int sto,
                                                              uint32_t noise) {
    uint32_t b = f2u(x);
    uint32_t a = b & 0x7FFFFFFFu;
    uint32_t r = rnd_bits(a, p, sto, noise);
    return u2f((b & 0x80000000u) | r);
}

/* 1 if some x[j] is a non-zero value below the smallest normal of the format, or inf/NaN
   (then the block takes the full rounding). */
static inline int needs_full(const float *x, int64_t n, const P *p) {
    uint32_t flag = 0u;
    for (int64_t j = 0; j < n; j++) {
        uint32_t a = f2u(x[j]) & 0x7FFFFFFFu;
        flag |= (uint32_t)((a - 1u) < (p->minn - 1u)) | (uint32_t)(a >= 0x7F800000u);
    }
    return flag != 0u;
}

enum { BLK = 256 };

/* y[i] = round(x[i]) (+ 0 if plus_zero, which turns -0 into +0) for one block of m <= BLK
   elements: the full rounding only if some element of the block needs it. sto selects
   stochastic rounding with noise[i]. Inlined with constant flags at each call, so each use
   compiles to its own loop. y may equal x. */
static inline __attribute__((always_inline)) void round_block(float *y, const float *x,
                                                              int64_t m, const P *p, int sto,
                                                              const uint32_t *noise,
                                                              int plus_zero) {
    if (needs_full(x, m, p)) {
        for (int64_t i = 0; i < m; i++) {
            float r = rnd(x[i], p, sto, sto ? noise[i] : 0u);
            y[i] = plus_zero ? r + 0.0f : r;
        }
    } else {
        for (int64_t i = 0; i < m; i++) {
            float r = rnd_normal(x[i], p, sto, sto ? noise[i] : 0u);
            y[i] = plus_zero ? r + 0.0f : r;
        }
    }
}

/* dst[j] = round(src[j]) (nearest), block by block. */
static void round_into(float *dst, const float *src, int64_t n, const P *p) {
    for (int64_t i0 = 0; i0 < n; i0 += BLK)
        round_block(dst + i0, src + i0, n - i0 < BLK ? n - i0 : BLK, p, 0, NULL, 0);
}

void lp_round_nearest(const float *x, float *y, int64_t n, const int32_t *c, float q) {
    P p = load(c, q);
    round_into(y, x, n, &p);
}

/* In place x <- round(+0 + round(x)): a one-term accumulation. */
void lp_round_sum1(float *x, int64_t n, const int32_t *c, float q) {
    P p = load(c, q);
    for (int64_t i0 = 0; i0 < n; i0 += BLK)
        round_block(x + i0, x + i0, n - i0 < BLK ? n - i0 : BLK, &p, 0, NULL, 1);
}

/* Stochastic rounding; element i's noise is the counter-based hash of i under the key
   (k0, k1), as in quantize._noise. */
void lp_round_stochastic(const float *x, float *y, int64_t n, const int32_t *c, float q,
                         uint32_t k0, uint32_t k1) {
    P p = load(c, q);
    uint32_t noise[BLK];
    for (int64_t i0 = 0; i0 < n; i0 += BLK) {
        int64_t m = n - i0 < BLK ? n - i0 : BLK;
        uint32_t hi = (uint32_t)((uint64_t)i0 >> 32);  /* constant within a block */
        for (int64_t i = 0; i < m; i++) {
            uint32_t h = mix((uint32_t)(i0 + i) ^ k0);
            noise[i] = mix(h ^ k1 ^ hi) & 0x7FFFFFFFu;
        }
        round_block(y + i0, x + i0, m, &p, 1, noise, 0);
    }
}

/* acc[j] <- round(acc[j] + t[i, j]) for i = 0..g-1 in order (t[i, j] rounded first if
   round_terms; acc set to +0 first if init), tiled over j so that a tile of acc stays in
   cache. acc and t must not overlap. */
void lp_accumulate(float *restrict acc, const float *restrict t, int64_t g, int64_t mn,
                   const int32_t *c, float q, int round_terms, int init) {
    P p = load(c, q);
    enum { T = 2048 };
    float tmp[T];
    for (int64_t j0 = 0; j0 < mn; j0 += T) {
        int64_t jn = mn - j0 < T ? mn - j0 : T;
        float *a = acc + j0;
        int64_t i0 = 0;
        if (init && g > 0) {
            /* acc starts at +0: round(+0 + round(t)) == round(t) + 0 (the + 0 turns -0 into
               +0; a representable value stays representable) */
            const float *t0 = t + j0;
            if (round_terms) {
                round_into(a, t0, jn, &p);
                for (int64_t j = 0; j < jn; j++) a[j] += 0.0f;
            } else {
                for (int64_t j = 0; j < jn; j++) tmp[j] = t0[j] + 0.0f;
                round_into(a, tmp, jn, &p);
            }
            i0 = 1;
        } else if (init) {
            memset(a, 0, sizeof(float) * jn);
        }
        for (int64_t i = i0; i < g; i++) {
            const float *ti = t + i * mn + j0;
            if (round_terms) {
                round_into(tmp, ti, jn, &p);
                for (int64_t j = 0; j < jn; j++) tmp[j] = a[j] + tmp[j];
            } else {
                for (int64_t j = 0; j < jn; j++) tmp[j] = a[j] + ti[j];
            }
            round_into(a, tmp, jn, &p);
        }
    }
}

/* out (M x N, zero-initialised, row-major) <- chunked product of a (strides sa0, sa1) and
   b (row stride sb0, unit column stride): inside each chunk of cl terms every product is
   added with a rounding (the product itself rounded first unless exact_products), then the
   chunk result is added to out with a rounding. Tiled over rows and columns. */
int lp_matmul_exact(const float *a, int64_t sa0, int64_t sa1, const float *b, int64_t sb0,
                    float *out, int64_t M, int64_t K, int64_t N, int64_t cl,
                    const int32_t *c, float q, int exact_products) {
    P p = load(c, q);
    enum { IB = 8, JT = 512 };
    float *part = (float *)malloc(sizeof(float) * IB * JT);
    if (!part) return 1;
    for (int64_t j0 = 0; j0 < N; j0 += JT) {
        int64_t jn = N - j0 < JT ? N - j0 : JT;
        for (int64_t i0 = 0; i0 < M; i0 += IB) {
            int64_t ib = M - i0 < IB ? M - i0 : IB;
            for (int64_t k0 = 0; k0 < K; k0 += cl) {
                int64_t k1 = K - k0 < cl ? K : k0 + cl;
                memset(part, 0, sizeof(float) * IB * JT);
                for (int64_t kk = k0; kk < k1; kk++) {
                    const float *bk = b + kk * sb0 + j0;
                    for (int64_t r = 0; r < ib; r++) {
                        float av = a[(i0 + r) * sa0 + kk * sa1];
                        float *pr = part + r * JT;
                        if (exact_products) {
                            for (int64_t j = 0; j < jn; j++)
                                pr[j] = rnd(pr[j] + av * bk[j], &p, 0, 0u);
                        } else {
                            for (int64_t j = 0; j < jn; j++)
                                pr[j] = rnd(pr[j] + rnd(av * bk[j], &p, 0, 0u), &p, 0, 0u);
                        }
                    }
                }
                for (int64_t r = 0; r < ib; r++) {
                    float *o = out + (i0 + r) * N + j0;
                    const float *pr = part + r * JT;
                    for (int64_t j = 0; j < jn; j++) o[j] = rnd(o[j] + pr[j], &p, 0, 0u);
                }
            }
        }
    }
    free(part);
    return 0;
}
