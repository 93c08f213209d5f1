/* metrics.c - task metrics on text (see metrics.h). */
#include "ailora/metrics.h"

#include <cjson/cJSON.h>
#include <stdlib.h>
#include <string.h>

#include "ailora/error.h"

static const char *const kind_names[] = {"", "loss", "exact_match", "gsm8k", "label", "mc", "squad", "rouge"};

int metric_parse(const char *name, MetricKind *kind) {
    for (int k = METRIC_LOSS; k <= METRIC_ROUGE; k++)
        if (!strcmp(name, kind_names[k])) {
            *kind = (MetricKind)k;
            return AIL_OK;
        }
    return AIL_ERROR(AIL_ERR_FORMAT, "unknown metric \"%.64s\" (one of loss, exact_match, gsm8k, label, mc, squad, "
                     "rouge)", name);
}

const char *metric_name(MetricKind kind) { return kind >= METRIC_LOSS && kind <= METRIC_ROUGE ? kind_names[kind] : ""; }

int metric_generates(MetricKind kind) {
    return kind == METRIC_EXACT_MATCH || kind == METRIC_GSM8K || kind == METRIC_LABEL || kind == METRIC_SQUAD ||
           kind == METRIC_ROUGE;
}

int metric_components(MetricKind kind, const char **names) {
    switch (kind) {
    case METRIC_EXACT_MATCH: names[0] = "exact_match"; return 1;
    case METRIC_GSM8K: names[0] = "gsm8k"; return 1;
    case METRIC_LABEL: names[0] = "label"; return 1;
    case METRIC_MC: names[0] = "mc_acc", names[1] = "mc_acc_norm"; return 2;
    case METRIC_SQUAD: names[0] = "squad_f1", names[1] = "squad_em"; return 2;
    case METRIC_ROUGE: names[0] = "rougeL", names[1] = "rouge1", names[2] = "rouge2"; return 3;
    default: return 0;
    }
}

/* ---- text ------------------------------------------------------------------------ */

/* Length of the valid UTF-8 sequence at s (n bytes left), 0 if invalid. */
static int utf8_len(const unsigned char *s, size_t n) {
    int len = s[0] < 0x80 ? 1 : (s[0] >> 5) == 6 ? 2 : (s[0] >> 4) == 14 ? 3 : (s[0] >> 3) == 30 ? 4 : 0;
    if (!len || (size_t)len > n || (len > 1 && s[0] < 0xC2) || (len == 4 && s[0] > 0xF4)) return 0;
    for (int i = 1; i < len; i++)
        if ((s[i] & 0xC0) != 0x80) return 0;
    if (len == 3 && ((s[0] == 0xE0 && s[1] < 0xA0) || (s[0] == 0xED && s[1] >= 0xA0))) return 0;  // overlong, surrogates
    if (len == 4 && ((s[0] == 0xF0 && s[1] < 0x90) || (s[0] == 0xF4 && s[1] >= 0x90))) return 0;
    return len;
}

size_t metric_detok(const int64_t *offsets, const uint8_t *bytes, int V, const int32_t *ids, int n, char *out,
                    size_t cap) {
    size_t w = 0;
    if (!cap) return 0;
    for (int i = 0; i < n; i++) {
        if (ids[i] < 0 || ids[i] >= V) continue;
        for (int64_t j = offsets[ids[i]]; j < offsets[ids[i] + 1] && w + 1 < cap; j++) out[w++] = (char)bytes[j];
    }
    out[w] = '\0';
    for (size_t i = 0; i < w;) {  // valid UTF-8 without NULs: a C string HDF5 and Python read back
        int len = out[i] ? utf8_len((const unsigned char *)out + i, w - i) : 0;
        if (!len) out[i] = '?', len = 1;
        i += (size_t)len;
    }
    return w;
}

int metric_references_parse(const char *json, char ***refs, int *n) {
    *refs = NULL, *n = 0;
    cJSON *root = cJSON_Parse(json);
    if (!root || !cJSON_IsArray(root)) {
        cJSON_Delete(root);
        return AIL_ERROR(AIL_ERR_FORMAT, "references are not a JSON array of strings: %.60s", json);
    }
    int count = cJSON_GetArraySize(root);
    char **out = ail_calloc((size_t)count + 1, sizeof *out);
    int rc = out ? AIL_OK : AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (int i = 0; i < count && rc == AIL_OK; i++) {
        cJSON *item = cJSON_GetArrayItem(root, i);
        if (!cJSON_IsString(item) || !item->valuestring) {
            rc = AIL_ERROR(AIL_ERR_FORMAT, "references: entry %d is not a string: %.60s", i, json);
            break;
        }
        if (!(out[i] = ail_malloc(strlen(item->valuestring) + 1))) rc = AIL_ERROR(AIL_ERR_MEM, "out of memory");
        else strcpy(out[i], item->valuestring);
    }
    cJSON_Delete(root);
    if (rc != AIL_OK) {
        metric_references_free(out, count);
        return rc;
    }
    *refs = out, *n = count;
    return AIL_OK;
}

void metric_references_free(char **refs, int n) {
    for (int i = 0; refs && i < n; i++) free(refs[i]);
    free(refs);
}

static int is_space(char c) { return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f' || c == '\v'; }
static int is_punct(char c) { return (c >= 33 && c <= 47) || (c >= 58 && c <= 64) || (c >= 91 && c <= 96) || (c >= 123 && c <= 126); }
static char lower(char c) { return c >= 'A' && c <= 'Z' ? (char)(c - 'A' + 'a') : c; }

/* Whitespace tokens of s: starts and lengths (at most max); returns the count. */
static int split_ws(const char *s, const char **tok, int *len, int max) {
    int n = 0;
    for (const char *p = s; *p && n < max;) {
        while (*p && is_space(*p)) p++;
        if (!*p) break;
        const char *q = p;
        while (*q && !is_space(*q)) q++;
        tok[n] = p, len[n] = (int)(q - p), n++;
        p = q;
    }
    return n;
}

void metric_squad_normalize(const char *in, char *out, size_t cap) {
    // lower, drop punctuation, then the articles and extra whitespace go with one split
    size_t n = strlen(in), w = 0;
    char *tmp = ail_malloc(n + 1);
    if (!tmp || !cap) {
        if (cap) out[0] = '\0';
        free(tmp);
        return;
    }
    for (size_t i = 0; i < n; i++)
        if (!is_punct(in[i])) tmp[w++] = lower(in[i]);
    tmp[w] = '\0';
    size_t o = 0;
    for (const char *p = tmp; *p;) {
        while (*p && is_space(*p)) p++;
        const char *q = p;
        while (*q && !is_space(*q)) q++;
        int len = (int)(q - p);
        int article = (len == 1 && !strncmp(p, "a", 1)) || (len == 2 && !strncmp(p, "an", 2)) ||
                      (len == 3 && !strncmp(p, "the", 3));
        if (len && !article) {
            if (o && o + 1 < cap) out[o++] = ' ';
            for (int i = 0; i < len && o + 1 < cap; i++) out[o++] = p[i];
        }
        p = q;
    }
    out[o] = '\0';
    free(tmp);
}

/* Normalized squad text of s (malloc'ed; NULL: out of memory). */
static char *squad_norm_dup(const char *s) {
    size_t cap = strlen(s) + 1;
    char *o = ail_malloc(cap);
    if (o) metric_squad_normalize(s, o, cap);
    return o;
}

double metric_squad_f1(const char *pred, const char *ref) {
    char *p = squad_norm_dup(pred), *r = squad_norm_dup(ref);
    double f1 = 0;
    int np = 0, nr = 0;
    if (p && r) {
        int maxp = (int)strlen(p) / 2 + 1, maxr = (int)strlen(r) / 2 + 1;
        const char **tp = ail_malloc(sizeof *tp * maxp), **tr = ail_malloc(sizeof *tr * maxr);
        int *lp = ail_malloc(sizeof *lp * maxp), *lr = ail_malloc(sizeof *lr * maxr);
        char *used = ail_calloc((size_t)maxr, 1);
        if (tp && tr && lp && lr && used) {
            np = split_ws(p, tp, lp, maxp), nr = split_ws(r, tr, lr, maxr);
            int same = 0;  // multiset intersection: each reference token used once
            for (int i = 0; i < np; i++)
                for (int j = 0; j < nr; j++)
                    if (!used[j] && lp[i] == lr[j] && !strncmp(tp[i], tr[j], (size_t)lp[i])) {
                        used[j] = 1, same++;
                        break;
                    }
            if (np == 0 || nr == 0) f1 = np == nr;
            else if (same) {
                double prec = (double)same / np, rec = (double)same / nr;
                f1 = 2 * prec * rec / (prec + rec);
            }
        }
        free(tp), free(tr), free(lp), free(lr), free(used);
    }
    free(p), free(r);
    return f1;
}

/* ---- gsm8k ------------------------------------------------------------------------ */

static int is_digit(char c) { return c >= '0' && c <= '9'; }

/* The number starting at the digit s[i] (with a '-' / '$' just before it), normalized. */
static void number_at(const char *s, size_t i, char *out, size_t cap) {
    int neg = (i >= 1 && s[i - 1] == '-') || (i >= 2 && s[i - 1] == '$' && s[i - 2] == '-');
    size_t e = i;
    while (is_digit(s[e]) || s[e] == ',' || s[e] == '.') e++;
    while (e > i && (s[e - 1] == '.' || s[e - 1] == ',')) e--;  // a sentence's full stop
    size_t o = 0;
    if (neg && o + 1 < cap) out[o++] = '-';
    for (size_t j = i; j < e && o + 1 < cap; j++)
        if (s[j] != ',') out[o++] = s[j];
    out[o] = '\0';
    char *dot = strchr(out, '.');
    if (dot) {  // "12.00" -> "12", "12.50" stays
        int zeros = 1;
        for (char *c = dot + 1; *c; c++) zeros &= *c == '0';
        if (zeros) *dot = '\0';
    }
}

void metric_gsm8k_extract(const char *text, char *out, size_t cap) {
    if (!cap) return;
    out[0] = '\0';
    const char *from = text, *hash;
    for (const char *p = text; (hash = strstr(p, "####")); p = hash + 4) from = hash + 4;
    size_t n = strlen(from);
    if (from != text) {  // the first number after the last ####
        for (size_t i = 0; i < n; i++)
            if (is_digit(from[i])) {
                number_at(from, i, out, cap);
                return;
            }
        return;
    }
    for (size_t i = n; i-- > 0;)  // the last number
        if (is_digit(from[i])) {
            while (i > 0 && (is_digit(from[i - 1]) || from[i - 1] == ',' || from[i - 1] == '.')) i--;
            while (!is_digit(from[i])) i++;  // a leading ',' or '.' is not part of it
            number_at(from, i, out, cap);
            return;
        }
}

/* ---- label ------------------------------------------------------------------------ */

/* lowercase, ASCII punctuation removed, surrounding whitespace trimmed */
static void label_normalize(const char *s, size_t n, char *out, size_t cap) {
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++)
        if (!is_punct(s[i])) out[o++] = lower(s[i]);
    out[o] = '\0';
    size_t b = 0;
    while (out[b] && is_space(out[b])) b++;
    while (o > b && is_space(out[o - 1])) o--;
    out[o] = '\0';
    memmove(out, out + b, o - b + 1);
}

/* ---- rouge ------------------------------------------------------------------------ */

typedef struct {
    int n, *id;  /* token ids: equal ids = equal tokens */
} Toks;

/* rouge-score's default tokenizer: lowercase, runs of [a-z0-9]. Ids are given by
 * first appearance over both texts (dict: starts/lengths of the distinct tokens). */
static int rouge_tokens(const char *s, Toks *t, const char ***dict, int **dlen, int *ndict, int *dcap) {
    size_t n = strlen(s);
    t->n = 0;
    t->id = ail_malloc(sizeof(int) * (n / 2 + 1));
    if (!t->id) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    for (size_t i = 0; i < n;) {
        char c = lower(s[i]);
        if (!((c >= 'a' && c <= 'z') || is_digit(c))) {
            i++;
            continue;
        }
        size_t j = i;
        while (j < n && ((lower(s[j]) >= 'a' && lower(s[j]) <= 'z') || is_digit(s[j]))) j++;
        int len = (int)(j - i), id = -1;
        for (int k = 0; k < *ndict && id < 0; k++)
            if ((*dlen)[k] == len) {
                int eq = 1;
                for (int m = 0; m < len && eq; m++) eq = lower((*dict)[k][m]) == lower(s[i + m]);
                if (eq) id = k;
            }
        if (id < 0) {
            if (*ndict == *dcap) {
                int nc = *dcap ? 2 * *dcap : 64;
                const char **d = ail_realloc(*dict, sizeof **dict * nc);
                if (d) *dict = d;
                int *l = ail_realloc(*dlen, sizeof **dlen * nc);
                if (l) *dlen = l;
                if (!d || !l) return AIL_ERROR(AIL_ERR_MEM, "out of memory");
                *dcap = nc;
            }
            (*dict)[*ndict] = s + i, (*dlen)[*ndict] = len, id = (*ndict)++;
        }
        t->id[t->n++] = id;
        i = j;
    }
    return AIL_OK;
}

static int cmp_ll(const void *a, const void *b) {
    long long x = *(const long long *)a, y = *(const long long *)b;
    return x < y ? -1 : x > y;
}

static double fmeasure(double p, double r) { return p + r > 0 ? 2 * p * r / (p + r) : 0.0; }

/* ROUGE-N F of two token lists (n = 1, 2): sorted n-gram keys merged. */
static double rouge_n(const Toks *pred, const Toks *ref, int n, int ndict) {
    int np = pred->n >= n ? pred->n - n + 1 : 0, nr = ref->n >= n ? ref->n - n + 1 : 0;
    long long *a = ail_malloc(sizeof(long long) * (np + 1)), *b = ail_malloc(sizeof(long long) * (nr + 1));
    double f = 0;
    if (a && b) {
        for (int i = 0; i < np; i++) a[i] = n == 1 ? pred->id[i] : (long long)pred->id[i] * ndict + pred->id[i + 1];
        for (int i = 0; i < nr; i++) b[i] = n == 1 ? ref->id[i] : (long long)ref->id[i] * ndict + ref->id[i + 1];
        qsort(a, (size_t)np, sizeof *a, cmp_ll);
        qsort(b, (size_t)nr, sizeof *b, cmp_ll);
        int i = 0, j = 0, overlap = 0;
        while (i < np && j < nr) {
            if (a[i] == b[j]) overlap++, i++, j++;
            else if (a[i] < b[j]) i++;
            else j++;
        }
        f = fmeasure((double)overlap / (np > 1 ? np : 1), (double)overlap / (nr > 1 ? nr : 1));
    }
    free(a), free(b);
    return f;
}

static double rouge_l(const Toks *pred, const Toks *ref) {
    if (!pred->n || !ref->n) return 0;
    int *prev = ail_calloc((size_t)pred->n + 1, sizeof(int)), *cur = ail_calloc((size_t)pred->n + 1, sizeof(int));
    double f = 0;
    if (prev && cur) {
        for (int i = 1; i <= ref->n; i++) {
            for (int j = 1; j <= pred->n; j++)
                cur[j] = ref->id[i - 1] == pred->id[j - 1] ? prev[j - 1] + 1 : (prev[j] > cur[j - 1] ? prev[j] : cur[j - 1]);
            int *t = prev;
            prev = cur, cur = t;
        }
        int lcs = prev[pred->n];
        f = fmeasure((double)lcs / pred->n, (double)lcs / ref->n);
    }
    free(prev), free(cur);
    return f;
}

int metric_rouge(const char *pred, const char *ref, double rouge[3]) {
    Toks tp = {0}, tr = {0};
    const char **dict = NULL;
    int *dlen = NULL, ndict = 0, dcap = 0;
    int rc = rouge_tokens(pred, &tp, &dict, &dlen, &ndict, &dcap);
    if (rc == AIL_OK) rc = rouge_tokens(ref, &tr, &dict, &dlen, &ndict, &dcap);
    if (rc == AIL_OK) {
        rouge[0] = rouge_n(&tp, &tr, 1, ndict);
        rouge[1] = rouge_n(&tp, &tr, 2, ndict);
        rouge[2] = rouge_l(&tp, &tr);
    }
    free(tp.id), free(tr.id), free(dict), free(dlen);
    return rc;
}

/* ---- per prediction ----------------------------------------------------------------- */

int metric_score(MetricKind kind, const char *pred, char *const *refs, int nrefs, double *scores) {
    int nc = 0;
    const char *names[METRIC_MAX_COMPONENTS];
    nc = metric_components(kind, names);
    for (int c = 0; c < nc; c++) scores[c] = 0;
    size_t cap = strlen(pred) + 64;
    for (int i = 0; i < nrefs; i++) cap = strlen(refs[i]) + 64 > cap ? strlen(refs[i]) + 64 : cap;
    char *a = ail_malloc(cap), *b = ail_malloc(cap);
    if (!a || !b) {
        free(a), free(b);
        return AIL_ERROR(AIL_ERR_MEM, "out of memory");
    }
    int rc = AIL_OK;
    if (kind == METRIC_EXACT_MATCH || kind == METRIC_SQUAD) metric_squad_normalize(pred, a, cap);
    if (kind == METRIC_GSM8K) metric_gsm8k_extract(pred, a, cap);
    if (kind == METRIC_LABEL) {
        const char *tok[1];
        int len[1];
        int n = split_ws(pred, tok, len, 1);
        label_normalize(n ? tok[0] : "", n ? (size_t)len[0] : 0, a, cap);
    }
    for (int i = 0; i < nrefs && rc == AIL_OK; i++) {
        switch (kind) {
        case METRIC_EXACT_MATCH:
            metric_squad_normalize(refs[i], b, cap);
            scores[0] = scores[0] || !strcmp(a, b);
            break;
        case METRIC_GSM8K:
            metric_gsm8k_extract(refs[i], b, cap);
            scores[0] = scores[0] || (a[0] && !strcmp(a, b));
            break;
        case METRIC_LABEL:
            label_normalize(refs[i], strlen(refs[i]), b, cap);
            scores[0] = scores[0] || (a[0] && !strcmp(a, b));
            break;
        case METRIC_SQUAD: {
            metric_squad_normalize(refs[i], b, cap);
            double f1 = metric_squad_f1(pred, refs[i]);
            scores[0] = f1 > scores[0] ? f1 : scores[0];
            scores[1] = scores[1] || !strcmp(a, b);
            break;
        }
        case METRIC_ROUGE: {
            double r[3];
            rc = metric_rouge(pred, refs[i], r);
            // score_multi: per type, the reference with the highest F (the first on ties)
            if (rc == AIL_OK) {
                scores[0] = r[2] > scores[0] ? r[2] : scores[0];
                scores[1] = r[0] > scores[1] ? r[0] : scores[1];
                scores[2] = r[1] > scores[2] ? r[1] : scores[2];
            }
            break;
        }
        default:
            break;
        }
    }
    free(a), free(b);
    return rc;
}

int metric_mc(int n, const int32_t *example, const int8_t *gold, const double *ll, const int32_t *chars,
              double *acc, double *acc_norm, int *nexamples, int8_t *chosen) {
    *acc = *acc_norm = 0, *nexamples = 0;
    for (int i = 0; i < n;) {
        int j = i, g = -1, ngold = 0, best = i, best_norm = i;
        while (j < n && example[j] == example[i]) {
            if (gold[j]) g = j, ngold++;
            if (chars[j] < 1)
                return AIL_ERROR(AIL_ERR_FORMAT, "multiple choice row %d: mc_chars %d (an option has >= 1 character)", j,
                                 chars[j]);
            if (ll[j] > ll[best]) best = j;
            if (ll[j] / chars[j] > ll[best_norm] / chars[best_norm]) best_norm = j;
            j++;
        }
        if (ngold != 1)
            return AIL_ERROR(AIL_ERR_FORMAT, "multiple choice example %d has %d gold options (mc_gold), not 1", example[i],
                             ngold);
        *acc += best == g, *acc_norm += best_norm == g, (*nexamples)++;
        for (int k = i; chosen && k < j; k++) chosen[k] = (int8_t)(k == best);
        i = j;
    }
    return AIL_OK;
}
