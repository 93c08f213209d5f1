"""tokenization.py - the model's own tokenizer (HF tokenizer.json), its chat template,
and the raw bytes of every token id (the /detok tables of the dataset contract).

Standard HF files only: DIR/tokenizer.json, and next to it tokenizer_config.json
(eos/bos/pad tokens, chat_template) and, as transformers >= 4.43 saves it,
chat_template.jinja. Templates are rendered with jinja2 the way transformers renders
them (sandboxed, trim_blocks, lstrip_blocks); without jinja2 a ChatML template
(<|im_start|>role\\ncontent<|im_end|>\\n) is rendered by hand.
"""

import hashlib
import json
import os


class TokError(Exception):
    pass


def _token_str(v):
    """A special token in tokenizer_config.json: a string or an AddedToken dict."""
    if v is None:
        return None
    if isinstance(v, dict):
        return v.get("content")
    return str(v)


def byte_decoder():
    """Inverse of byte-level BPE's byte -> printable character map (GPT-2): printable
    Latin-1 bytes stand for themselves, the other 68 bytes take code points 256, 257, ...
    in byte order."""
    keep = set(range(ord("!"), ord("~") + 1)) | set(range(0xA1, 0xAC + 1)) | set(range(0xAE, 0xFF + 1))
    dec = {}
    extra = 0
    for b in range(256):
        if b in keep:
            dec[chr(b)] = b
        else:
            dec[chr(256 + extra)] = b
            extra += 1
    return dec


class Tok:
    """tokenizer.json + tokenizer_config.json of one model."""

    def __init__(self, path):
        try:
            from tokenizers import Tokenizer
        except ImportError:
            raise TokError("the tokenizers package is missing: run scripts/install-deps.sh and use .venv/bin/python")
        if os.path.isdir(path):
            path = os.path.join(path, "tokenizer.json")
        if not os.path.isfile(path):
            raise TokError(f"{path}: no tokenizer.json")
        self.path = path
        d = os.path.dirname(os.path.abspath(path))
        with open(path, "rb") as f:
            raw = f.read()
        self.sha256 = hashlib.sha256(raw).hexdigest()
        try:
            self.spec = json.loads(raw)
            self.tk = Tokenizer.from_str(raw.decode("utf-8"))
        except Exception as e:
            raise TokError(f"{path}: not a tokenizer.json ({str(e).splitlines()[0] if str(e) else type(e).__name__})")
        self.config = {}
        cfg = os.path.join(d, "tokenizer_config.json")
        if os.path.isfile(cfg):
            try:
                with open(cfg, encoding="utf-8") as f:
                    self.config = json.load(f)
            except (ValueError, UnicodeDecodeError) as e:
                raise TokError(f"{cfg}: malformed JSON ({e})")
        self.chat_template = self._template(d)
        self.vocab_size = max(self.tk.get_vocab(with_added_tokens=True).values()) + 1
        self.eos_token = _token_str(self.config.get("eos_token"))
        self.bos_token = _token_str(self.config.get("bos_token"))
        pad = _token_str(self.config.get("pad_token"))
        if self.eos_token is None:
            raise TokError(f"{cfg}: no eos_token (the EOS appended to every answer)")
        self.eos_id = self.token_id(self.eos_token, "eos_token")
        self.pad_id = self.token_id(pad, "pad_token") if pad is not None else self.eos_id
        # generation stops at any of these: the tokenizer's EOS, then those that
        # generation_config.json lists (an int or a list, as transformers writes it)
        self.eos_ids = [self.eos_id]
        gen = os.path.join(d, "generation_config.json")
        if os.path.isfile(gen):
            try:
                with open(gen, encoding="utf-8") as f:
                    e = json.load(f).get("eos_token_id")
            except (ValueError, UnicodeDecodeError, AttributeError) as err:
                raise TokError(f"{gen}: malformed JSON ({err})")
            for i in e if isinstance(e, list) else [e] if e is not None else []:
                if not isinstance(i, int) or not 0 <= i < self.vocab_size:
                    raise TokError(f"{gen}: eos_token_id {i!r} is not a token id")
                if i not in self.eos_ids:
                    self.eos_ids.append(i)

    def _template(self, d):
        t = self.config.get("chat_template")
        if isinstance(t, list):  # [{"name": "default", "template": ...}, ...]
            named = {x.get("name"): x.get("template") for x in t if isinstance(x, dict)}
            t = named.get("default")
        jinja = os.path.join(d, "chat_template.jinja")
        if t is None and os.path.isfile(jinja):
            with open(jinja, encoding="utf-8") as f:
                t = f.read()
        return t

    def token_id(self, token, what):
        i = self.tk.token_to_id(token)
        if i is None:
            raise TokError(f"{self.path}: {what} {token!r} is not in the vocabulary")
        return i

    def encode(self, text, special):
        """Token ids of text; special: let the tokenizer add its BOS/EOS (plain prompts,
        as HF's tokenizer(text)); chat templates write their own special tokens."""
        return self.tk.encode(text, add_special_tokens=special).ids

    def decode(self, ids):
        return self.tk.decode(ids, skip_special_tokens=True)

    def render_chat(self, messages):
        """The chat template applied to messages with the assistant's turn opened
        (add_generation_prompt=True), as transformers' apply_chat_template renders it."""
        if self.chat_template is None:
            raise TokError(f"{self.path}: the tokenizer has no chat_template (use --format plain)")
        try:
            import jinja2.sandbox
        except ImportError:
            return self._render_chatml(messages)

        def raise_exception(msg):
            raise TokError(f"chat template: {msg}")

        try:
            if getattr(self, "_jinja", None) is None:
                env = jinja2.sandbox.ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
                env.globals["raise_exception"] = raise_exception
                self._jinja = env.from_string(self.chat_template)
            tmpl = self._jinja
            kw = {k: _token_str(v) for k, v in self.config.items() if k.endswith("_token")}
            return tmpl.render(messages=messages, add_generation_prompt=True, **kw)
        except TokError:
            raise
        except Exception as e:
            raise TokError(f"chat template cannot be rendered: {e}")

    def _render_chatml(self, messages):
        if "<|im_start|>" not in self.chat_template:
            raise TokError("jinja2 is missing and the chat template is not ChatML: install python3-jinja2")
        out = "".join(f"<|im_start|>{m['role']}\n{m['content']}<|im_end|>\n" for m in messages)
        return out + "<|im_start|>assistant\n"

    def detok_tables(self):
        """(offsets [V+1] int64, bytes) of every token id's raw bytes: byte-level BPE
        tokens mapped back through the GPT-2 byte map, sentencepiece-style tokens with
        U+2581 as space and <0xNN> byte fallback; special tokens empty; ids absent from
        the vocabulary empty."""
        model = self.spec.get("model", {})
        vocab = model.get("vocab", {})
        if isinstance(vocab, list):  # Unigram: [[piece, score], ...]
            vocab = {p[0]: i for i, p in enumerate(vocab)}
        dec = self.spec.get("decoder") or {}
        kinds = {dec.get("type")} | {x.get("type") for x in dec.get("decoders", []) or []}
        bytelevel = "ByteLevel" in kinds
        if not bytelevel and not kinds & {"Metaspace", "Replace", "ByteFallback"}:
            raise TokError(f"{self.path}: decoder {sorted(k for k in kinds if k)} not supported for /detok "
                           "(byte-level BPE or sentencepiece-style only)")
        bmap = byte_decoder()
        pieces = [b""] * self.vocab_size
        for tok, i in vocab.items():
            if bytelevel:
                try:
                    pieces[i] = bytes(bmap[c] for c in tok)
                except KeyError:
                    raise TokError(f"{self.path}: token {i} {tok!r} is not byte-level")
            elif len(tok) == 6 and tok.startswith("<0x") and tok.endswith(">"):
                pieces[i] = bytes([int(tok[3:5], 16)])
            else:
                pieces[i] = tok.replace("\u2581", " ").encode("utf-8")
        for a in self.spec.get("added_tokens", []):
            pieces[a["id"]] = b"" if a.get("special") else a["content"].encode("utf-8")
        offsets = [0]
        for p in pieces:
            offsets.append(offsets[-1] + len(p))
        return offsets, b"".join(pieces)
