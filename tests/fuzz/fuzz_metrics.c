/* fuzz_metrics.c - libFuzzer harness of the text metrics (src/eval/metrics.c): the
 * /references JSON parser and every metric on arbitrary text.
 *
 * Input: byte 0 picks the metric; the rest is "prediction\nreferences": the
 * prediction is first detokenized through a table made of the input's own bytes
 * (token i = byte i, so invalid UTF-8 and NULs reach metric_detok), the references
 * parsed as a JSON array. Invariants: an accepted array scores in [0, 1] on every
 * component; a refused one is one recorded error (AIL_ERR_FORMAT), never a crash.
 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/metrics.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    MetricKind kinds[5] = {METRIC_EXACT_MATCH, METRIC_GSM8K, METRIC_LABEL, METRIC_SQUAD, METRIC_ROUGE};
    MetricKind kind = kinds[data[0] % 5];
    data++, size--;
    const uint8_t *nl = memchr(data, '\n', size);
    size_t np = nl ? (size_t)(nl - data) : size;
    // detok table: token i is byte i of the prediction part
    int V = (int)np;
    int64_t *off = malloc(sizeof(int64_t) * (size_t)(V + 1));
    int32_t *ids = malloc(sizeof(int32_t) * (size_t)(V + 1));
    for (int i = 0; i <= V; i++) off[i] = i;
    for (int i = 0; i < V; i++) ids[i] = i;
    char *pred = malloc(np + 1);
    size_t w = metric_detok(off, data, V, ids, V, pred, np + 1);
    if (w != np || strlen(pred) != np) abort();  // every byte kept or replaced, NULs included
    char *refs_json = malloc(size - np + 1);
    size_t nr = nl ? size - np - 1 : 0;
    memcpy(refs_json, nl ? nl + 1 : data, nr);
    refs_json[nr] = '\0';
    char **refs;
    int nrefs;
    if (metric_references_parse(refs_json, &refs, &nrefs) == AIL_OK) {
        double s[METRIC_MAX_COMPONENTS];
        const char *names[METRIC_MAX_COMPONENTS];
        int nc = metric_components(kind, names);
        if (metric_score(kind, pred, refs, nrefs, s) == AIL_OK)
            for (int c = 0; c < nc; c++)
                if (!(s[c] >= 0 && s[c] <= 1)) abort();
        metric_references_free(refs, nrefs);
    } else if (ail_error_code() != AIL_ERR_FORMAT) {
        abort();
    }
    ail_error_clear();
    char out[64];
    metric_gsm8k_extract(pred, out, sizeof out);
    metric_squad_normalize(pred, out, sizeof out);
    free(off), free(ids), free(pred), free(refs_json);
    return 0;
}
