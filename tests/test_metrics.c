/* test_metrics.c - the text metrics (metrics.h).
 *
 *  - ROUGE-1/2/L F and SQuAD EM/F1 (and the normalized text) on the 216 cases of
 *    tests/reference/metric_fixtures.json, made by make_metric_fixtures.py with
 *    Google's rouge-score and the official SQuAD v2.0 functions. Tolerance 1e-12:
 *    both sides compute the same ratios of small integers in float64, so they
 *    differ at most by the last bit of a division.
 *  - closed forms: ROUGE of hand-counted pairs, gsm8k extraction, label, exact
 *    match, multiple choice acc / acc_norm (lm-evaluation-harness's argmax rules),
 *    detokenization with invalid UTF-8, malformed references refused.
 */
#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"
#include "ailora/metrics.h"
#include "testutil.h"

static char *slurp(const char *path) {
    FILE *f = fopen(path, "rb");
    if (!f) return NULL;
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    if (fread(s, 1, (size_t)n, f) != (size_t)n) n = 0;
    s[n] = '\0';
    fclose(f);
    return s;
}

static void check_fixtures(const char *srcdir) {
    char path[1024];
    snprintf(path, sizeof path, "%s/tests/reference/metric_fixtures.json", srcdir);
    char *text = slurp(path);
    TU_CHECK(text != NULL, "cannot read %s", path);
    if (!text) return;
    cJSON *root = cJSON_Parse(text);
    TU_CHECK(cJSON_IsArray(root), "%s is not a JSON array", path);
    int n = cJSON_GetArraySize(root);
    double worst = 0;
    for (int i = 0; i < n; i++) {
        cJSON *c = cJSON_GetArrayItem(root, i);
        const char *pred = cJSON_GetObjectItem(c, "prediction")->valuestring;
        char *refs_json = cJSON_PrintUnformatted(cJSON_GetObjectItem(c, "references"));
        char **refs;
        int nrefs;
        TU_CHECK(metric_references_parse(refs_json, &refs, &nrefs) == AIL_OK, "%s", ail_error_message());
        double r[3], s[2];
        TU_CHECK(metric_score(METRIC_ROUGE, pred, refs, nrefs, r) == AIL_OK, "%s", ail_error_message());
        TU_CHECK(metric_score(METRIC_SQUAD, pred, refs, nrefs, s) == AIL_OK, "%s", ail_error_message());
        double want[5] = {cJSON_GetObjectItem(c, "rougeL")->valuedouble, cJSON_GetObjectItem(c, "rouge1")->valuedouble,
                          cJSON_GetObjectItem(c, "rouge2")->valuedouble,
                          cJSON_GetObjectItem(c, "squad_f1")->valuedouble,
                          cJSON_GetObjectItem(c, "squad_em")->valuedouble};
        double got[5] = {r[0], r[1], r[2], s[0], s[1]};
        const char *what[5] = {"rougeL", "rouge1", "rouge2", "squad_f1", "squad_em"};
        for (int k = 0; k < 5; k++) {
            double d = fabs(got[k] - want[k]);
            worst = d > worst ? d : worst;
            TU_CHECK(d <= 1e-12, "case %d %s: got %.15g want %.15g (prediction \"%s\", references %s)", i, what[k],
                     got[k], want[k], pred, refs_json);
        }
        char norm[512];
        metric_squad_normalize(pred, norm, sizeof norm);
        TU_CHECK(!strcmp(norm, cJSON_GetObjectItem(c, "squad_norm")->valuestring), "case %d: normalized \"%s\" want \"%s\"",
                 i, norm, cJSON_GetObjectItem(c, "squad_norm")->valuestring);
        metric_references_free(refs, nrefs);
        free(refs_json);
    }
    printf("fixtures: %d cases, max |diff| %.2e\n", n, worst);
    TU_CHECK(n >= 200, "only %d fixture cases", n);
    cJSON_Delete(root);
    free(text);
}

static double score1(MetricKind k, const char *pred, const char *ref) {
    char *refs[1] = {(char *)ref};
    double s[3] = {-1, -1, -1};
    metric_score(k, pred, refs, 1, s);
    return s[0];
}

static void check_closed_forms(void) {
    // ROUGE by hand: pred "a b c d", ref "a b d": unigrams 3 common, P 3/4 R 3/3 -> F 6/7;
    // bigrams pred {ab, bc, cd}, ref {ab, bd}: 1 common, P 1/3 R 1/2 -> F 2/5; LCS "a b d" = 3 -> F 6/7
    double r[3];
    TU_CHECK(metric_rouge("A b, c d!", "a B d", r) == AIL_OK, "%s", ail_error_message());
    TU_CLOSE(r[0], 6.0 / 7, 1e-15, "rouge1");
    TU_CLOSE(r[1], 2.0 / 5, 1e-15, "rouge2");
    TU_CLOSE(r[2], 6.0 / 7, 1e-15, "rougeL");
    // clipped counts: "the the the" vs "the cat": 1 common unigram, P 1/3 R 1/2
    metric_rouge("the the the", "the cat", r);
    TU_CLOSE(r[0], 2 * (1.0 / 3) * 0.5 / (1.0 / 3 + 0.5), 1e-15, "rouge1 clipped");

    // gsm8k
    struct { const char *text, *want; } g[] = {
        {"Natalia sold 48/2 = 24 clips.\n#### 72", "72"},
        {"so the answer is $1,200.00.", "1200"},
        {"It costs 3.50 dollars, then 7 more", "7"},
        {"The total is -$5.", "-5"},
        {"#### 1,000 and then 5", "1000"},
        {"first #### 3 second #### 4.0", "4"},
        {"no number here", ""},
        {"12.5", "12.5"},
    };
    for (size_t i = 0; i < sizeof g / sizeof *g; i++) {
        char out[64];
        metric_gsm8k_extract(g[i].text, out, sizeof out);
        TU_CHECK(!strcmp(out, g[i].want), "gsm8k \"%s\": got \"%s\" want \"%s\"", g[i].text, out, g[i].want);
    }
    TU_CHECK(score1(METRIC_GSM8K, "The answer is 1,200.", "1200") == 1, "gsm8k match");
    TU_CHECK(score1(METRIC_GSM8K, "The answer is 12", "1200") == 0, "gsm8k miss");
    TU_CHECK(score1(METRIC_GSM8K, "no idea", "") == 0, "gsm8k: no number never matches");

    // label: first word, lowercased, punctuation dropped
    TU_CHECK(score1(METRIC_LABEL, " Positive. The review", "positive") == 1, "label match");
    TU_CHECK(score1(METRIC_LABEL, "negative!", "Negative") == 1, "label case");
    TU_CHECK(score1(METRIC_LABEL, "not positive", "positive") == 0, "label: only the first word");
    TU_CHECK(score1(METRIC_LABEL, "", "positive") == 0, "label: empty prediction");

    // normalized string exact match; squad F1 of partial overlap: 2 of 3 vs 2 of 2 -> 0.8
    TU_CHECK(score1(METRIC_EXACT_MATCH, "The Eiffel tower.", "eiffel Tower") == 1, "exact_match normalized");
    TU_CHECK(score1(METRIC_EXACT_MATCH, "Eiffel", "eiffel tower") == 0, "exact_match miss");
    TU_CLOSE(metric_squad_f1("big red dog", "red dog"), 0.8, 1e-15, "squad f1");

    // multiple choice: example 0 gold option 1, LL (-5, -6, -9), chars (1, 10, 3): acc picks 0 (wrong),
    // acc_norm picks 1 (-0.6 > -3, -5); example 1: tie (-2, -2) goes to the first, gold 0: both right
    int32_t ex[5] = {0, 0, 0, 1, 1}, chars[5] = {1, 10, 3, 4, 4};
    int8_t gold[5] = {0, 1, 0, 1, 0}, chosen[5];
    double ll[5] = {-5, -6, -9, -2, -2}, acc, accn;
    int nex;
    TU_CHECK(metric_mc(5, ex, gold, ll, chars, &acc, &accn, &nex, chosen) == AIL_OK, "%s", ail_error_message());
    TU_CHECK(nex == 2 && acc == 1 && accn == 2, "mc: %d examples, acc %g acc_norm %g (want 2, 1, 2)", nex, acc, accn);
    TU_CHECK(chosen[0] == 1 && chosen[1] == 0 && chosen[3] == 1 && chosen[4] == 0, "mc: chosen rows");
    int8_t twogold[5] = {1, 1, 0, 1, 0};
    TU_CHECK(metric_mc(5, ex, twogold, ll, chars, &acc, &accn, &nex, NULL) == AIL_ERR_FORMAT, "two gold options accepted");
    ail_error_clear();

    // detokenization: token 2 holds an invalid byte, token 3 a NUL: both become '?'; ids
    // outside the vocabulary add nothing; the euro sign (3 bytes) survives
    int64_t off[5] = {0, 2, 5, 7, 8};
    uint8_t bytes[8] = {'h', 'i', 0xE2, 0x82, 0xAC, 'a', 0xFF, 0x00};
    int32_t ids[5] = {0, 1, 2, 9, 3};
    char out[32];
    size_t n = metric_detok(off, bytes, 4, ids, 5, out, sizeof out);
    TU_CHECK(n == 8 && !strcmp(out, "hi\xE2\x82\xAC" "a??"), "detok: got %zu bytes \"%s\"", n, out);
    n = metric_detok(off, bytes, 4, ids, 2, out, 4);  // truncated mid-character: the partial one is replaced
    TU_CHECK(n == 3 && !strcmp(out, "hi?"), "detok truncated: \"%s\"", out);

    // references
    char **refs;
    int nrefs;
    const char *bad[] = {"", "[", "{\"a\": 1}", "[1]", "[\"x\", null]", "\"x\""};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        TU_CHECK(metric_references_parse(bad[i], &refs, &nrefs) == AIL_ERR_FORMAT, "references %s accepted", bad[i]);
        ail_error_clear();
    }
    TU_CHECK(metric_references_parse("[\"a\", \"b \\\"c\\\"\"]", &refs, &nrefs) == AIL_OK && nrefs == 2 &&
                 !strcmp(refs[1], "b \"c\""), "references parse");
    metric_references_free(refs, nrefs);
    MetricKind k;
    TU_CHECK(metric_parse("rouge", &k) == AIL_OK && k == METRIC_ROUGE, "metric_parse");
    TU_CHECK(metric_parse("bleu", &k) == AIL_ERR_FORMAT, "unknown metric accepted");
    ail_error_clear();
}

int main(void) {
    const char *srcdir = getenv("top_srcdir") ? getenv("top_srcdir") : ".";
    check_fixtures(srcdir);
    check_closed_forms();
    return tu_finish("test_metrics");
}
