/* metrics.h - task metrics of evaluation datasets (dataset v2 `metric` attribute),
 * on text: generated tokens are detokenized with the dataset's /detok tables and
 * scored against the row's /references (a JSON array of accepted strings).
 *
 *   exact_match  normalized string EM: squad_normalize(prediction) equals that of a
 *                reference (without /references: the labelled span's tokens, eval.h)
 *   gsm8k        the answer number: after the last "####" if any, else the last
 *                number of the text; normalized (commas and '$' removed, a
 *                trailing '.' or all-zero decimals dropped: "1,200.00" -> "1200");
 *                references go through the same extraction; EM of the two
 *   label        the first whitespace-separated word of the prediction, lowercased
 *                with ASCII punctuation removed, equals the reference so normalized
 *   squad        SQuAD v2.0 official script: normalize = lowercase, drop ASCII
 *                punctuation, drop the words a/an/the, collapse whitespace;
 *                EM and token F1 (bag-of-tokens overlap; F1 = 1 when both are
 *                empty, 0 when one is), each the max over the references
 *   rouge        ROUGE-1, ROUGE-2, ROUGE-L F-measure as Google's rouge-score computes
 *                them with its default tokenizer and no stemmer: lowercase, every
 *                run of characters outside [a-z0-9] is a separator; n-gram overlap
 *                sum(min counts), P = overlap / #pred n-grams, R = overlap / #ref
 *                n-grams (each over max(count, 1)), F = 2PR / (P + R) (0 when P + R = 0);
 *                ROUGE-L from the longest common subsequence (0 when either side
 *                has no token); each type takes the reference of the highest F
 *                (score_multi)
 *   mc           multiple choice by log-likelihood (lm-evaluation-harness): per
 *                example, acc = [argmax_i LL_i == gold], acc_norm = [argmax_i
 *                LL_i / chars_i == gold], LL_i the summed log-probability of
 *                option i's scored tokens, ties to the first option
 * Lowercasing is ASCII (Python lowercases all of Unicode: the two differ only
 * on non-ASCII capitals, which the fixtures leave out).
 *
 * Each metric reports a fixed list of components (metric_components); the first is
 * the headline. Everything here is pure: no I/O, no MPI.
 */
#ifndef AILORA_METRICS_H
#define AILORA_METRICS_H

#include <stddef.h>
#include <stdint.h>

typedef enum {
    METRIC_NONE = 0,  /* no `metric` attribute: loss, and token exact match when max_new_tokens > 0 */
    METRIC_LOSS,
    METRIC_EXACT_MATCH,
    METRIC_GSM8K,
    METRIC_LABEL,
    METRIC_MC,
    METRIC_SQUAD,
    METRIC_ROUGE,
} MetricKind;

enum { METRIC_MAX_COMPONENTS = 3 };

/* "loss" ... "rouge" -> kind; AIL_ERR_FORMAT naming the allowed ones otherwise. */
int metric_parse(const char *name, MetricKind *kind);
const char *metric_name(MetricKind kind);
/* 1 for the metrics that decode (exact_match with references, gsm8k, label, squad, rouge). */
int metric_generates(MetricKind kind);
/* Component names (curves /eval/<name>); returns their count (0 for none, loss). */
int metric_components(MetricKind kind, const char **names);

/* Bytes of tokens ids[0..n) from the /detok tables (offsets [V + 1], bytes), into
 * out (cap bytes, always NUL-terminated; ids outside [0, V) add nothing). Returns
 * the length written. Invalid UTF-8 is replaced by '?' so that text is valid. */
size_t metric_detok(const int64_t *offsets, const uint8_t *bytes, int V, const int32_t *ids, int n, char *out,
                    size_t cap);

/* The accepted answers of a /references entry: a JSON array of strings. *refs
 * (malloc'ed array of malloc'ed strings) and *n; a malformed entry is
 * AIL_ERR_FORMAT, never a crash. metric_references_free releases them. */
int metric_references_parse(const char *json, char ***refs, int *n);
void metric_references_free(char **refs, int n);

/* Normalizations (out: cap bytes, NUL-terminated). */
void metric_squad_normalize(const char *in, char *out, size_t cap);
/* gsm8k answer of text, normalized; "" when the text holds no number. */
void metric_gsm8k_extract(const char *text, char *out, size_t cap);

double metric_squad_f1(const char *pred, const char *ref);
/* rouge[0..3) = ROUGE-1, ROUGE-2, ROUGE-L F-measure of pred against one reference. */
int metric_rouge(const char *pred, const char *ref, double rouge[3]);

/* Scores of one generated prediction against its references, in the order of
 * metric_components (1/0 for exact matches, F-measures in [0, 1]). */
int metric_score(MetricKind kind, const char *pred, char *const *refs, int nrefs, double *scores);

/* Multiple choice over n rows of (example id, gold flag, log-likelihood, chars),
 * rows of one example contiguous: *acc and *acc_norm summed over examples (the
 * caller divides by *nexamples); correct (n, may be NULL) gets 1 on the rows
 * chosen by acc. An example without exactly one gold row is AIL_ERR_FORMAT. */
int metric_mc(int n, const int32_t *example, const int8_t *gold, const double *ll, const int32_t *chars,
              double *acc, double *acc_norm, int *nexamples, int8_t *chosen);

#endif
