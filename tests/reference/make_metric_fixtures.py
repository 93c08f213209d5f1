"""Reference values for ailora's text metrics (src/eval/metrics.c), written to
tests/reference/metric_fixtures.json. Run with /work/venv-ref/bin/python (needs
rouge-score):

    python tests/reference/make_metric_fixtures.py tests/reference/metric_fixtures.json

ROUGE: Google's rouge-score RougeScorer(["rouge1", "rouge2", "rougeL"],
use_stemmer=False).score_multi(references, prediction), F-measures.
SQuAD: the normalization and EM/F1 of the official SQuAD v2.0 evaluation script
(evaluate-v2.0.py: normalize_answer, compute_exact, compute_f1), max over references.
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


def normalize_answer(s):
    def remove_articles(text):
        return re.sub(re.compile(r"\b(a|an|the)\b", re.UNICODE), " ", text)

    def white_space_fix(text):
        return " ".join(text.split())

    def remove_punc(text):
        exclude = set(string.punctuation)
        return "".join(ch for ch in text if ch not in exclude)

    return white_space_fix(remove_articles(remove_punc(s.lower())))


def compute_exact(a_gold, a_pred):
    return int(normalize_answer(a_gold) == normalize_answer(a_pred))


def compute_f1(a_gold, a_pred):
    gold_toks = normalize_answer(a_gold).split()
    pred_toks = normalize_answer(a_pred).split()
    common = collections.Counter(gold_toks) & collections.Counter(pred_toks)
    num_same = sum(common.values())
    if len(gold_toks) == 0 or len(pred_toks) == 0:
        return int(gold_toks == pred_toks)
    if num_same == 0:
        return 0
    precision = 1.0 * num_same / len(pred_toks)
    recall = 1.0 * num_same / len(gold_toks)
    return (2 * precision * recall) / (precision + recall)


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
            "squad_em": max(compute_exact(r, pred) for r in refs),
            "squad_f1": max(compute_f1(r, pred) for r in refs),
            "squad_norm": normalize_answer(pred),
        })
    with open(out, "w") as f:
        json.dump(rows, f, indent=0)
    print(f"{len(rows)} cases -> {out}")


if __name__ == "__main__":
    main(sys.argv[1])
