/* Blocks of SGLD / SGLDFP / SGD steps for the Gaussian-prior GLMs of neurips18.sgmcmc.
 *
 * One step, for the minibatch S_j of the block's step j:
 *
 *     theta' = a theta + c + noise_j + s sum_{i in S_j} x_i (t_i - h(x_i . theta)),
 *
 * with a = 1 - gamma lambda, s = gamma N / p, h the link (k z, or the logistic function),
 * t the targets (SGLD, SGD) or h(x_i . theta*) (SGLDFP) and c = gamma lambda theta* for
 * SGLDFP, else 0. The caller draws the noise and the minibatch indices; nothing random
 * happens here. All arithmetic is in the model's dtype, without -ffast-math; one thread.
 *
 * Templated with the preprocessor: the first pass through this file defines the common
 * part, then includes the file itself twice, once per REAL (float, double). Each function
 * name gets the suffix of its REAL through SG(name): sg_glm_f32, sg_glm_f64.
 */
#ifndef SG_REAL

#include <math.h>
#include <stdint.h>
#include <string.h>

#if defined(__GNUC__)
#define PREFETCH(p) __builtin_prefetch((p), 0, 3)
#else
#define PREFETCH(p) ((void)0)
#endif

enum { LANES = 8 };

#define SG_REAL float
#define SG(name) name##_f32
#define SG_EXP expf
#define SG_FABS fabsf
#include __FILE__
#undef SG_REAL
#undef SG
#undef SG_EXP
#undef SG_FABS

#define SG_REAL double
#define SG(name) name##_f64
#define SG_EXP exp
#define SG_FABS fabs
#include __FILE__
#undef SG_REAL
#undef SG
#undef SG_EXP
#undef SG_FABS

#else /* SG_REAL: the body, once per floating-point type */

/* x . th with LANES partial sums (lane l takes the terms k = l mod LANES), combined
   pairwise: a fixed order whatever the machine, vectorisable without reassociation. */
static inline SG_REAL SG(dot)(const SG_REAL *restrict x, const SG_REAL *restrict th,
                              int64_t d) {
    SG_REAL acc[LANES] = {0};
    int64_t k = 0;
    for (; k + LANES <= d; k += LANES)
        for (int l = 0; l < LANES; l++) acc[l] += x[k + l] * th[k + l];
    for (int l = 0; k < d; k++, l++) acc[l] += x[k] * th[k];
    for (int w = LANES / 2; w > 0; w /= 2)
        for (int l = 0; l < w; l++) acc[l] += acc[l + w];
    return acc[0];
}

/* 1 / (1 + e^-z) without overflow: 1 / (1 + e) for z >= 0, e / (1 + e) below, with
   e = e^-|z| <= 1; a select instead of a branch (the sign of z is unpredictable). */
static inline SG_REAL SG(logistic)(SG_REAL z) {
    SG_REAL e = SG_EXP(-SG_FABS(z));
    return (z >= 0 ? (SG_REAL)1 : e) / ((SG_REAL)1 + e);
}

/* g += sum over the m rows idx[0..m-1] of x_r (t_r - h(x_r . theta)). */
static inline void SG(resid)(const SG_REAL *restrict X, int64_t d, const int64_t *idx,
                             int64_t m, const SG_REAL *restrict theta,
                             const SG_REAL *restrict t, int link, SG_REAL k,
                             SG_REAL *restrict g) {
    for (int64_t i = 0; i < m; i++) {
        int64_t r = idx[i];
        const SG_REAL *x = X + r * d;
        SG_REAL z = SG(dot)(x, theta, d);
        SG_REAL h = link == 1 ? SG(logistic)(z) : k * z;
        SG_REAL e = t[r] - h;
        for (int64_t j = 0; j < d; j++) g[j] += e * x[j];
    }
}

/* b steps. idx: b x p minibatch indices; noise: b x d scaled noise, or NULL (SGD); theta
   updated in place; every thin-th state (counting from step, the number of steps before
   this block) is copied to draws[kept], draws[kept + 1], ...; work: d scratch values.
   Returns the new number of kept draws. */
int64_t SG(sg_glm)(const SG_REAL *restrict X, int64_t d, const int64_t *idx, int64_t b,
                   int64_t p, const SG_REAL *noise, SG_REAL *restrict theta, double a_,
                   double s_, const SG_REAL *restrict c, const SG_REAL *restrict t, int link,
                   double k_, int64_t step, int64_t thin, SG_REAL *draws, int64_t kept,
                   SG_REAL *restrict work) {
    const SG_REAL a = (SG_REAL)a_, s = (SG_REAL)s_, k = (SG_REAL)k_;
    SG_REAL *g = work;
    int64_t left = thin - step % thin; /* steps until the next kept state */
    for (int64_t j = 0; j < b; j++) {
        memset(g, 0, sizeof(SG_REAL) * (size_t)d);
        const int64_t *ij = idx + j * p;
        if (j + 1 < b) { /* the next step's rows are known: fetch them now */
            const int64_t *in = ij + p;
            for (int64_t i = 0; i < p; i++) {
                const SG_REAL *x = X + in[i] * d;
                PREFETCH(x);
                PREFETCH(x + d - 1);
                PREFETCH(t + in[i]);
            }
        }
        SG(resid)(X, d, ij, p, theta, t, link, k, g);
        const SG_REAL *nz = noise ? noise + j * d : NULL;
        for (int64_t q = 0; q < d; q++) {
            SG_REAL add = nz ? c[q] + nz[q] : c[q];
            theta[q] = a * theta[q] + add + s * g[q];
        }
        if (--left == 0) {
            memcpy(draws + kept * d, theta, sizeof(SG_REAL) * (size_t)d);
            kept++;
            left = thin;
        }
    }
    return kept;
}

#endif /* SG_REAL */
