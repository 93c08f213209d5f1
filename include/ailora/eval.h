/* eval.h - evaluation on the CPU model: greedy generation and task metrics.
 *
 * Exact match of a labelled span: for an evaluation row (ids, labels) of length T
 * whose scored positions (labels != -100, t >= 1) run from `first` to `last`,
 * the prompt ids[0..first) is decoded greedily for last - first + 1 tokens; the
 * row matches when every generated token equals labels[first..last]. Rows whose
 * span is longer than the decoding budget count as misses.
 *
 * The training loop calls these at each evaluation (train.c); they know nothing
 * of the loop, the optimizer or the data order.
 */
#ifndef AILORA_EVAL_H
#define AILORA_EVAL_H

#include <stdint.h>

#include "ailora/llama.h"

/* Greedy decoding: tokens[0..len) is the prompt; appends n_new argmax tokens into
 * tokens[len..len+n_new). acts must be allocated for B = 1 and T >= len + n_new - 1.
 * No KV cache: one forward over the growing sequence per new token. */
int eval_generate_greedy(const Llama *llm, LlamaActs *acts, int32_t *tokens, int len, int n_new);

/* *match = 1 when greedy decoding reproduces the labelled span of (ids, labels) (T)
 * within max_new tokens, else 0. work holds T tokens; acts as above with T. */
int eval_exact_match(const Llama *llm, LlamaActs *acts, const int32_t *ids, const int32_t *labels, int T,
                     int max_new, int32_t *work, int *match);

#endif
