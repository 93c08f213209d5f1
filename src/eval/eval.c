/* eval.c - greedy generation and exact match on the CPU model (see eval.h).
 * Compiled twice, like llama.c (float for the library, double for the tests). */
#include "ailora/eval.h"

#include <string.h>

#include "ailora/error.h"

int eval_generate_greedy(const Llama *llm, LlamaActs *a, int32_t *tokens, int len, int n_new) {
    int T_alloc = a->T, rc = AIL_OK;
    if (a->B != 1 || len < 1 || len + n_new - 1 > T_alloc)
        return AIL_ERROR(AIL_ERR_ARG, "greedy decoding of %d + %d tokens needs activations for 1 x %d", len,
                         n_new, len + n_new - 1);
    for (int i = 0; i < n_new && rc == AIL_OK; i++) {
        a->T = len + i;  // the buffers were sized for T_alloc >= this
        double unused_sum;
        long unused_count;
        rc = llama_forward(llm, a, tokens, NULL, &unused_sum, &unused_count);
        const real *row = a->logits + (size_t)(len + i - 1) * llm->V;
        int best = 0;
        for (int v = 1; v < llm->V; v++) best = row[v] > row[best] ? v : best;
        tokens[len + i] = best;
    }
    a->T = T_alloc;
    return rc;
}

int eval_exact_match(const Llama *llm, LlamaActs *acts, const int32_t *ids, const int32_t *labels, int T,
                     int max_new, int32_t *work, int *match) {
    *match = 0;
    int first = -1, last = -1;
    for (int t = 1; t < T; t++)
        if (labels[t] != -100) {
            if (first < 0) first = t;
            last = t;
        }
    if (first < 0 || last - first + 1 > max_new) return AIL_OK;
    int n = last - first + 1;
    memcpy(work, ids, sizeof(int32_t) * (size_t)first);
    AIL_CHECK(eval_generate_greedy(llm, acts, work, first, n));
    for (int j = 0; j < n; j++)
        if (work[first + j] != labels[first + j]) return AIL_OK;
    *match = 1;
    return AIL_OK;
}
