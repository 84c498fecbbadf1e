#!/usr/bin/python3
"""Writes the tiny random-weight BERT fixture of the GCG phrase-similarity tests (committed; the
tests need no Python):

  bert-tiny/config.json, vocab.txt   a BertConfig (hidden 32, 2 layers, 4 heads, intermediate 64,
                                     64 positions) and ~200 real bert-base-uncased word pieces
  bert-tiny/pytorch_model.bin        torch.save of a BertForPreTraining-style state dict in the
                                     ORIGINAL release's key style: "bert." prefix, LayerNorm
                                     gamma/beta, a pooler and a cls.predictions.bias key
  bert-tiny.phrases.json             the phrases below (UTF-8)
  bert-tiny.reference.safetensors    per phrase i: ids_<i> (int64, [CLS] ... [SEP]); embeddings
                                     [N, 32] (f32, mean of the last hidden state over all tokens);
                                     similarity [N, N] (f32, sklearn-style cosine)

The references come from the straightforward implementations below, written from the HF
semantics (BertTokenizerFast: BertNormalizer + BertPreTokenizer + WordPiece; BertModel in eval
mode) and GLaMM's eval/gcg/evaluate.py, not from transformers (not installed here).

Run with Debian's python3-torch: /usr/bin/python3 tests/data/make_bert_tiny.py
"""
import json
import math
import os
import struct
import unicodedata

import numpy as np
import torch

HERE = os.path.dirname(os.path.abspath(__file__))
MODEL_DIR = os.path.join(HERE, "bert-tiny")

CONFIG = {
    "architectures": ["BertForMaskedLM"],
    "model_type": "bert",
    "vocab_size": 0,  # set to len(VOCAB)
    "hidden_size": 32,
    "num_hidden_layers": 2,
    "num_attention_heads": 4,
    "intermediate_size": 64,
    "max_position_embeddings": 64,
    "type_vocab_size": 2,
    "layer_norm_eps": 1e-12,
    "hidden_act": "gelu",
    "hidden_dropout_prob": 0.1,
    "attention_probs_dropout_prob": 0.1,
    "initializer_range": 0.02,
    "pad_token_id": 0,
    "position_embedding_type": "absolute",
}

SPECIAL = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
PUNCT = list("!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~") + ["\u00bf", "\u2014", "\u3002"]
WORDS = """a an the man men woman women person people child boy girl dog dogs cat cats horse
bird car bus truck bike bicycle tree trees grass sky cloud water sea beach sand snow mountain
mountains road street building house wall window door table chair bed shirt hat jacket dress
shoes bag umbrella ball kite surf ##board board red blue green white black yellow brown gray
orange pink small large big tall young old left right front back top bottom near next on in of
with and at to is are holding wearing sitting standing walking riding playing two three one
some group her his its their this that cafe hello world un ##aff ##able ##s ##es ##ed ##ing
##er ##ly ##y ##e ##a ##o ##n ##t ##r ##l ##covered covered fa ##cade na ##ive over
under behind field park city light pole sign food plate pizza cake cup glass bottle phone
laptop screen book paper hand head face hair eye""".split()
CJK = ["\u732b", "\u72d7"]  # cat, dog
JAMO = ["\u1112", "##\u1161", "##\u11ab"]  # the decomposition of U+D55C (Hangul HAN)
VOCAB = SPECIAL + PUNCT + WORDS + CJK + JAMO

PHRASES = [
    "a man in a red shirt",
    "A Man in a RED shirt.",
    "the caf\u00e9's umbrella!",
    "H\u00e9llo, unaffable dogs",
    "two \u732b cats\u3002",
    "xyzzy qwertyuiop",
    "",
    "a woman holding a surfboard [MASK]",
    "na\u00efve fa\u00e7ade \u00bfsnow-covered?",
    "snow-covered\tmountains\u00a0and\u200bpeople\n",
    "\u00c0 NA\u0308IVE \ud55c group",
    "a woman holding a surfboard",
]


# ---------------------------------------------------------------------------------------------
# Tokenizer (tokenizers' BertNormalizer, BertPreTokenizer, WordPiece; [CLS] $A [SEP])

def is_control(ch):
    if ch in "\t\n\r":
        return False
    return unicodedata.category(ch) in ("Cc", "Cf", "Co", "Cn", "Cs")


def is_whitespace(ch):
    # Rust's char::is_whitespace (White_Space); str.isspace() agrees on every non-control char.
    return ch.isspace()


def is_cjk(cp):
    return (0x4E00 <= cp <= 0x9FFF or 0x3400 <= cp <= 0x4DBF or 0x20000 <= cp <= 0x2A6DF
            or 0x2A700 <= cp <= 0x2B73F or 0x2B740 <= cp <= 0x2B81F or 0x2B920 <= cp <= 0x2CEAF
            or 0xF900 <= cp <= 0xFAFF or 0x2F800 <= cp <= 0x2FA1F)


def is_punctuation(ch):
    cp = ord(ch)
    if 33 <= cp <= 47 or 58 <= cp <= 64 or 91 <= cp <= 96 or 123 <= cp <= 126:
        return True
    return unicodedata.category(ch).startswith("P")


def normalize(text):
    out = []
    for ch in text:
        if ord(ch) == 0 or ord(ch) == 0xFFFD or is_control(ch):
            continue
        if is_whitespace(ch):
            out.append(" ")
        elif is_cjk(ord(ch)):
            out += [" ", ch, " "]
        else:
            out.append(ch)
    text = unicodedata.normalize("NFD", "".join(out))
    text = "".join(ch for ch in text if unicodedata.category(ch) != "Mn")
    return "".join(ch.lower() for ch in text)  # per character: no final-sigma rule


def pre_tokenize(text):
    words, cur = [], ""
    for ch in text:
        if ch.isspace():
            if cur:
                words.append(cur)
            cur = ""
        elif is_punctuation(ch):
            if cur:
                words.append(cur)
            words.append(ch)
            cur = ""
        else:
            cur += ch
    if cur:
        words.append(cur)
    return words


def wordpiece(word, vocab):
    if len(word) > 100:
        return ["[UNK]"]
    pieces, start = [], 0
    while start < len(word):
        end = len(word)
        while end > start:
            sub = ("##" if start > 0 else "") + word[start:end]
            if sub in vocab:
                break
            end -= 1
        if end == start:
            return ["[UNK]"]
        pieces.append(sub)
        start = end
    return pieces


def encode(text, vocab, max_length=512):
    pieces, rest = [], text
    while rest:  # special tokens in the raw text first
        hits = [(rest.find(s), s) for s in SPECIAL if rest.find(s) >= 0]
        if not hits:
            break
        pos, special = min(hits, key=lambda h: (h[0], -len(h[1])))
        for w in pre_tokenize(normalize(rest[:pos])):
            pieces += wordpiece(w, vocab)
        pieces.append(special)
        rest = rest[pos + len(special):]
    for w in pre_tokenize(normalize(rest)):
        pieces += wordpiece(w, vocab)
    pieces = pieces[: max_length - 2]
    return [vocab["[CLS]"]] + [vocab[p] for p in pieces] + [vocab["[SEP]"]]


# ---------------------------------------------------------------------------------------------
# BertModel (eval) written out with plain tensor ops, float32 like transformers

def layer_norm(x, gamma, beta, eps):
    mean = x.mean(-1, keepdim=True)
    var = ((x - mean) ** 2).mean(-1, keepdim=True)
    return (x - mean) / torch.sqrt(var + eps) * gamma + beta


def bert_forward(sd, cfg, ids):
    eps = cfg["layer_norm_eps"]
    heads = cfg["num_attention_heads"]
    d = cfg["hidden_size"] // heads
    t = len(ids)
    ids = torch.tensor(ids)
    x = sd["bert.embeddings.word_embeddings.weight"][ids]
    x = x + sd["bert.embeddings.token_type_embeddings.weight"][0]
    x = x + sd["bert.embeddings.position_embeddings.weight"][:t]
    x = layer_norm(x, sd["bert.embeddings.LayerNorm.gamma"], sd["bert.embeddings.LayerNorm.beta"], eps)
    for i in range(cfg["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        lin = lambda name, v: v @ sd[p + name + ".weight"].T + sd[p + name + ".bias"]
        q = lin("attention.self.query", x).view(t, heads, d).transpose(0, 1)
        k = lin("attention.self.key", x).view(t, heads, d).transpose(0, 1)
        v = lin("attention.self.value", x).view(t, heads, d).transpose(0, 1)
        scores = q @ k.transpose(1, 2) / math.sqrt(d)
        probs = torch.exp(scores - scores.max(-1, keepdim=True).values)
        probs = probs / probs.sum(-1, keepdim=True)
        ctx = (probs @ v).transpose(0, 1).reshape(t, heads * d)
        a = layer_norm(lin("attention.output.dense", ctx) + x,
                       sd[p + "attention.output.LayerNorm.gamma"],
                       sd[p + "attention.output.LayerNorm.beta"], eps)
        h = lin("intermediate.dense", a)
        h = 0.5 * h * (1.0 + torch.erf(h / math.sqrt(2.0)))
        x = layer_norm(lin("output.dense", h) + a, sd[p + "output.LayerNorm.gamma"],
                       sd[p + "output.LayerNorm.beta"], eps)
    return x  # [T, C]


def sklearn_cosine(a, b):
    """cosine_similarity([a], [b]) on float32 rows: row / L2 norm (zero -> 1), then dot."""
    def normalized(x):
        n = np.sqrt(np.einsum("i,i->", x, x))
        if n < 10 * np.finfo(np.float32).eps:
            n = np.float32(1.0)
        return x / n
    return np.float32(np.dot(normalized(a), normalized(b)))


# ---------------------------------------------------------------------------------------------

def make_state_dict(cfg):
    g = torch.Generator().manual_seed(20240607)
    c, f, v = cfg["hidden_size"], cfg["intermediate_size"], cfg["vocab_size"]

    def randn(*shape, std=0.2):
        return torch.randn(*shape, generator=g) * std

    sd = {
        "bert.embeddings.word_embeddings.weight": randn(v, c, std=1.0),
        "bert.embeddings.position_embeddings.weight": randn(cfg["max_position_embeddings"], c, std=0.5),
        "bert.embeddings.token_type_embeddings.weight": randn(cfg["type_vocab_size"], c, std=0.5),
        "bert.embeddings.LayerNorm.gamma": 1.0 + randn(c, std=0.1),
        "bert.embeddings.LayerNorm.beta": randn(c, std=0.1),
    }
    for i in range(cfg["num_hidden_layers"]):
        p = f"bert.encoder.layer.{i}."
        for name in ("query", "key", "value"):
            sd[p + f"attention.self.{name}.weight"] = randn(c, c)
            sd[p + f"attention.self.{name}.bias"] = randn(c, std=0.05)
        sd[p + "attention.output.dense.weight"] = randn(c, c)
        sd[p + "attention.output.dense.bias"] = randn(c, std=0.05)
        sd[p + "attention.output.LayerNorm.gamma"] = 1.0 + randn(c, std=0.1)
        sd[p + "attention.output.LayerNorm.beta"] = randn(c, std=0.1)
        sd[p + "intermediate.dense.weight"] = randn(f, c)
        sd[p + "intermediate.dense.bias"] = randn(f, std=0.05)
        sd[p + "output.dense.weight"] = randn(c, f)
        sd[p + "output.dense.bias"] = randn(c, std=0.05)
        sd[p + "output.LayerNorm.gamma"] = 1.0 + randn(c, std=0.1)
        sd[p + "output.LayerNorm.beta"] = randn(c, std=0.1)
    sd["bert.pooler.dense.weight"] = randn(c, c)
    sd["bert.pooler.dense.bias"] = randn(c, std=0.05)
    sd["cls.predictions.bias"] = randn(v, std=0.05)
    return sd


ST_DTYPES = {torch.float32: "F32", torch.int64: "I64"}


def write_safetensors(path, tensors):
    """Minimal safetensors writer: sorted names, contiguous little-endian data."""
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        data = t.numpy().tobytes()
        header[name] = {"dtype": ST_DTYPES[t.dtype], "shape": list(t.shape),
                        "data_offsets": [offset, offset + len(data)]}
        blobs.append(data)
        offset += len(data)
    head = json.dumps(header, separators=(",", ":")).encode()
    head += b" " * ((8 - len(head) % 8) % 8)
    with open(path, "wb") as out:
        out.write(struct.pack("<Q", len(head)))
        out.write(head)
        for blob in blobs:
            out.write(blob)


def main():
    assert len(set(VOCAB)) == len(VOCAB), "duplicate vocabulary entries"
    cfg = dict(CONFIG, vocab_size=len(VOCAB))
    vocab = {piece: i for i, piece in enumerate(VOCAB)}
    os.makedirs(MODEL_DIR, exist_ok=True)
    with open(os.path.join(MODEL_DIR, "config.json"), "w") as out:
        json.dump(cfg, out, indent=2)
        out.write("\n")
    with open(os.path.join(MODEL_DIR, "vocab.txt"), "w", encoding="utf-8") as out:
        out.write("".join(piece + "\n" for piece in VOCAB))
    sd = make_state_dict(cfg)
    torch.save(sd, os.path.join(MODEL_DIR, "pytorch_model.bin"))

    reference, embeddings = {}, []
    for i, phrase in enumerate(PHRASES):
        ids = encode(phrase, vocab)
        print(i, repr(phrase), [VOCAB[k] for k in ids])
        reference[f"ids_{i}"] = torch.tensor(ids, dtype=torch.int64)
        with torch.no_grad():
            embeddings.append(bert_forward(sd, cfg, ids).mean(0))
    emb = torch.stack(embeddings)
    n = len(PHRASES)
    sim = np.zeros((n, n), dtype=np.float32)
    for i in range(n):
        for j in range(n):
            sim[i, j] = sklearn_cosine(emb[i].numpy(), emb[j].numpy())
    print(np.round(sim, 3))
    reference["embeddings"] = emb
    reference["similarity"] = torch.from_numpy(sim)
    write_safetensors(os.path.join(HERE, "bert-tiny.reference.safetensors"), reference)
    with open(os.path.join(HERE, "bert-tiny.phrases.json"), "w", encoding="utf-8") as out:
        json.dump(PHRASES, out, ensure_ascii=True, indent=1)
        out.write("\n")


if __name__ == "__main__":
    main()
