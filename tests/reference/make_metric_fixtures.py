"""Reference values for ailora's text metrics (src/eval/metrics.c), written to
tests/reference/metric_fixtures.json. Run with /work/venv-ref/bin/python (needs
rouge-score):

    python tests/reference/make_metric_fixtures.py tests/reference/metric_fixtures.json

ROUGE: Google's rouge-score RougeScorer(["rouge1", "rouge2", "rougeL"],
use_stemmer=False).score_multi(references, prediction), F-measures.
SQuAD: EM/F1 with the answer normalization of the official SQuAD v2.0 evaluation
(lowercase, no punctuation, no articles, whitespace tokens), max over references.
Texts: hand-written edge cases (empty strings, punctuation only, articles, repeated
words, digits, mixed case) and 200 seeded random texts over a small vocabulary
with punctuation, so that n-gram repeats and long common subsequences occur.
ASCII only: rouge-score lowercases with Python's Unicode lower(), ailora in ASCII.
"""
import json
import random
import re
import string
import sys
import collections

from rouge_score import rouge_scorer


# SQuAD's answer normalization, as its evaluation script defines it: lowercase, drop
# ASCII punctuation, drop the articles a / an / the, split on whitespace. (Written
# here from that definition; on ASCII text, removing whole tokens equals the script's
# word-boundary substitution.)
ARTICLES = ("a", "an", "the")


def squad_tokens(text):
    kept = "".join(c for c in text.lower() if c not in string.punctuation)
    return [w for w in kept.split() if w not in ARTICLES]


def squad_exact(gold, pred):
    return int(squad_tokens(gold) == squad_tokens(pred))


def squad_f1(gold, pred):
    g, p = squad_tokens(gold), squad_tokens(pred)
    if not g or not p:  # both empty: 1, one empty: 0
        return int(g == p)
    overlap = sum((collections.Counter(g) & collections.Counter(p)).values())
    if overlap == 0:
        return 0
    precision, recall = overlap / len(p), overlap / len(g)
    return 2 * precision * recall / (precision + recall)


HAND = [
    ("", [""]),
    ("", ["the cat"]),
    ("the cat", [""]),
    ("...", ["!!!"]),
    ("The Cat sat on the mat.", ["the cat sat on the mat"]),
    ("a cat, a dog, an owl", ["The cat and the dog"]),
    ("cat cat cat", ["cat"]),
    ("cat", ["cat cat cat"]),
    ("police killed the gunman", ["police kill the gunman", "the gunman was killed by police"]),
    ("Hello,world! 42 is 4,2", ["hello world 42", "is 4 2"]),
    ("New-York's mayor (2021)", ["new york s mayor 2021"]),
    ("the the the", ["a an the"]),
    ("x y z x y z", ["z y x z y x"]),
    ("Paris", ["Paris", "paris, France", "the city of Paris"]),
    ("don't stop", ["dont stop", "do not stop"]),
    ("  spaced\tout\nwords  ", ["spaced out words"]),
]

VOCAB = ["the", "a", "an", "cat", "Cat", "dog", "sat", "on", "mat", "and", "of", "42", "4,2", "run", "RUN",
         "x1", "new", "york", "it's", "blue", "red", "red.", "(big)", "-", "!", "Paris", "paris"]


def rand_text(rng):
    n = rng.randint(0, 14)
    return " ".join(rng.choice(VOCAB) for _ in range(n))


def main(out):
    rng = random.Random(1234)
    cases = list(HAND)
    for _ in range(200):
        cases.append((rand_text(rng), [rand_text(rng) for _ in range(rng.randint(1, 3))]))
    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL"], use_stemmer=False)
    rows = []
    for pred, refs in cases:
        s = scorer.score_multi(refs, pred)
        rows.append({
            "prediction": pred, "references": refs,
            "rouge1": s["rouge1"].fmeasure, "rouge2": s["rouge2"].fmeasure, "rougeL": s["rougeL"].fmeasure,
            "squad_em": max(squad_exact(r, pred) for r in refs),
            "squad_f1": max(squad_f1(r, pred) for r in refs),
            "squad_norm": " ".join(squad_tokens(pred)),
        })
    with open(out, "w") as f:
        json.dump(rows, f, indent=0)
    print(f"{len(rows)} cases -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
