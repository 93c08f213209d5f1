/* evaldata.h - what an evaluation dataset (v2 contract, DESIGN.md) adds to
 * /input_ids and /labels: how to score it.
 *
 *   root attributes  metric (string: loss | exact_match | gsm8k | label | mc | squad |
 *                    rouge), eos_token_ids (int array), max_new_tokens (int)
 *   /attention_mask [N, T] int8   1 = real token (absent: all real)
 *   /references [N]               JSON arrays of accepted answers (UTF-8 strings)
 *   /prompt_len [N] int32         prompt tokens from the row's first real token
 *   /mc_example, /mc_gold, /mc_chars [N]   multiple choice (metric = mc)
 *   /detok/offsets [V + 1] int64, /detok/bytes   bytes of each token id
 *
 * Everything is optional and read whole (evaluation sets are small); what the
 * metric needs must be there: generation metrics /references and /detok (except
 * exact_match, which without /references is the token exact match of the labelled
 * span, eval.h), mc the three /mc_* arrays. Malformed items are one error naming
 * the file and the item.
 */
#ifndef AILORA_EVALDATA_H
#define AILORA_EVALDATA_H

#include <stdint.h>

#include "ailora/metrics.h"

typedef struct {
    MetricKind metric;          /* METRIC_NONE: no attribute */
    int n, T;
    int32_t *eos;               /* eos_token_ids (neos), NULL when absent */
    int neos;
    int max_new;                /* max_new_tokens attribute, 0 when absent */
    int8_t *mask;               /* (n, T) or NULL */
    int32_t *prompt_len;        /* (n) or NULL */
    char **references;          /* (n) JSON text or NULL */
    int32_t *mc_example, *mc_chars;  /* (n) or NULL */
    int8_t *mc_gold;            /* (n) or NULL */
    int64_t *detok_off;         /* (V + 1) or NULL */
    uint8_t *detok_bytes;
    int detok_V;
} EvalData;

/* Reads the extras of path, whose /input_ids are (n, T) over a vocabulary of V. */
int evaldata_load(const char *path, int n, int T, int V, EvalData *x);
void evaldata_free(EvalData *x);

/* Prompt of row (ids, mask, labels) (T): the tokens of the prompt, without padding,
 * into prompt (T), *plen; *span: the labelled span's length (token exact match:
 * prompt = everything before the first scored position), or 0. Rows without a
 * prompt (no prompt_len, no scored position) get *plen = 0. */
void evaldata_prompt(const EvalData *x, int row, const int32_t *ids, const int32_t *labels, int32_t *prompt,
                     int *plen, int *span);

#endif
