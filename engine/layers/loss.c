/*
 * loss.c - softmax cross-entropy, the one loss the trainer needs.  Softmax and the
 * log-likelihood are fused so each row is shifted by its maximum once (huge logits
 * neither overflow nor lose the loss to exp underflow) and the gradient is the
 * familiar (softmax - onehot) / B with no division by a probability.
 */
#include <math.h>

#include "internal.h"

int lop_softmax_xent(const lop_tensor *logits, const int *labels, double *loss,
                     lop_tensor *dlogits, int *correct)
{
    if (!logits || !labels || !loss)
        return lop_fail(LOP_EINVAL, "softmax_xent: logits, labels and loss are required");
    if (logits->ndim != 2)
        return lop_fail(LOP_ESHAPE, "softmax_xent: logits must be [batch, classes], got rank %d",
                        logits->ndim);
    int nb = logits->shape[0], nk = logits->shape[1];
    if (dlogits && !lop_tensor_same_shape(dlogits, logits))
        return lop_fail(LOP_ESHAPE, "softmax_xent: dlogits must have the logits' shape [%d, %d]",
                        nb, nk);
    for (int b = 0; b < nb; b++)
        if (labels[b] < 0 || labels[b] >= nk)
            return lop_fail(LOP_EINVAL, "softmax_xent: label %d of sample %d is outside 0..%d",
                            labels[b], b, nk - 1);

    double total = 0.0;
    int hits = 0;
    for (int b = 0; b < nb; b++) {
        const float *z = logits->data + (size_t)b * nk;
        int best = 0;
        for (int k = 1; k < nk; k++)
            if (z[k] > z[best])
                best = k;
        double zmax = z[best], zlabel = z[labels[b]], sum = 0.0;
        /* d may alias z (in-place gradient): each entry is read before it is written. */
        float *d = dlogits ? dlogits->data + (size_t)b * nk : NULL;
        for (int k = 0; k < nk; k++) {
            double e = exp((double)z[k] - zmax);
            sum += e;
            if (d)
                d[k] = (float)e;
        }
        total += log(sum) + zmax - zlabel;
        hits += best == labels[b];
        if (d) {
            float scale = (float)(1.0 / (sum * nb));
            for (int k = 0; k < nk; k++)
                d[k] *= scale;
            d[labels[b]] -= (float)(1.0 / nb);
        }
    }
    *loss = total / nb;
    if (correct)
        *correct = hits;
    return LOP_OK;
}
