/*
 * distill.c - the knowledge-distillation loss (Hinton et al. 2015) that a short
 * fine-tune of a pruned network uses to learn from the original's logits, not only
 * from the labels.  Per image, with p = softmax(s), p_T = softmax(s / T) for the
 * student's logits s and q_T = softmax(t / T) for the teacher's t:
 *
 *     loss = (1 - a) * (-log p[label]) + a * T^2 * KL(q_T || p_T)
 *     dloss/ds = (1 - a) * (p - onehot) + a * T * (p_T - q_T)
 *
 * averaged over the batch.  T^2 keeps the soft term's gradient on the scale of the
 * hard one's whatever the temperature.  Every softmax is taken in log space, each row
 * shifted by its maximum, so huge logits neither overflow nor lose terms to underflow.
 */
#include <math.h>

#include "internal.h"

/* log softmax(z / T) of one row of k logits into out. */
static void log_softmax(const float *z, int k, double temperature, double *out)
{
    double zmax = z[0];
    for (int i = 1; i < k; i++)
        zmax = z[i] > zmax ? z[i] : zmax;
    double sum = 0.0;
    for (int i = 0; i < k; i++) {
        out[i] = ((double)z[i] - zmax) / temperature;
        sum += exp(out[i]);
    }
    double log_sum = log(sum);
    for (int i = 0; i < k; i++)
        out[i] -= log_sum;
}

int lop_distill_xent(const lop_tensor *logits, const int *labels, const lop_tensor *teacher,
                     float alpha, float temperature, double *loss, lop_tensor *dlogits,
                     int *correct)
{
    if (!logits || !labels || !teacher || !loss)
        return lop_fail(LOP_EINVAL, "distill_xent: logits, labels, teacher logits and loss "
                        "are required");
    if (logits->ndim != 2)
        return lop_fail(LOP_ESHAPE, "distill_xent: logits must be [batch, classes], got "
                        "rank %d", logits->ndim);
    int nb = logits->shape[0], nk = logits->shape[1];
    if (!lop_tensor_same_shape(teacher, logits))
        return lop_fail(LOP_ESHAPE, "distill_xent: the teacher's logits must have the "
                        "student's shape [%d, %d]", nb, nk);
    if (dlogits && !lop_tensor_same_shape(dlogits, logits))
        return lop_fail(LOP_ESHAPE, "distill_xent: dlogits must have the logits' shape "
                        "[%d, %d]", nb, nk);
    if (dlogits && (dlogits->data == logits->data || dlogits->data == teacher->data))
        return lop_fail(LOP_EINVAL, "distill_xent: dlogits must not share the logits' memory");
    if (!(alpha >= 0.0f && alpha <= 1.0f))
        return lop_fail(LOP_EINVAL, "distill_xent: the soft targets' weight must be in "
                        "[0, 1], got %g", (double)alpha);
    if (!(temperature > 0.0f && isfinite(temperature)))
        return lop_fail(LOP_EINVAL, "distill_xent: the temperature must be > 0, got %g",
                        (double)temperature);
    for (int b = 0; b < nb; b++)
        if (labels[b] < 0 || labels[b] >= nk)
            return lop_fail(LOP_EINVAL, "distill_xent: label %d of sample %d is outside "
                            "0..%d", labels[b], b, nk - 1);
    double *scratch = lop_malloc(3 * (size_t)nk * sizeof(double));
    if (!scratch)
        return LOP_ENOMEM;
    double *lp = scratch, *lp_t = scratch + nk, *lq_t = scratch + 2 * (size_t)nk;
    double a = alpha, t = temperature, total = 0.0;
    int hits = 0;
    for (int b = 0; b < nb; b++) {
        const float *z = logits->data + (size_t)b * nk;
        log_softmax(z, nk, 1.0, lp);
        log_softmax(z, nk, t, lp_t);
        log_softmax(teacher->data + (size_t)b * nk, nk, t, lq_t);
        double kl = 0.0;
        int best = 0;
        for (int k = 0; k < nk; k++) {
            kl += exp(lq_t[k]) * (lq_t[k] - lp_t[k]);
            best = z[k] > z[best] ? k : best;
        }
        total += (1.0 - a) * -lp[labels[b]] + a * t * t * kl;
        hits += best == labels[b];
        if (dlogits) {
            float *d = dlogits->data + (size_t)b * nk;
            for (int k = 0; k < nk; k++) {
                double hard = exp(lp[k]) - (k == labels[b]);
                double soft = exp(lp_t[k]) - exp(lq_t[k]);
                d[k] = (float)(((1.0 - a) * hard + a * t * soft) / nb);
            }
        }
    }
    lop_free(scratch);
    *loss = total / nb;
    if (correct)
        *correct = hits;
    return LOP_OK;
}
