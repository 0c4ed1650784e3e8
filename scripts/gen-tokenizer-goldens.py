#!/usr/bin/env python3
"""Generates tests/golden/tokenizer/*.json: token ids that llama.cpp (through llama-cpp-python)
gives for a fixed set of strings, for vocabularies that have no .inp/.out files in shared/.

  python3 scripts/gen-tokenizer-goldens.py [--shared ../shared]

Vocabularies: the files in shared/testdata/tokenizer-extra, plus the gpt-2 vocabulary with
tokenizer.ggml.pre replaced by other pre-tokenizer names (or removed), written to a temporary
directory with the gguf package; the C++ test applies the same override in memory.

Output (one file per vocabulary):
  strings.json: {"strings": [text | {"hex": bytes}]}  (shared by all vocabularies)
  <name>.json:  {"vocab": path under testdata, "pre": override or null (absent: no override,
                 "<absent>": key removed), "ids": [space-separated ids per string],
                 "special": [{"text", "add_special", "parse_special", "ids"}],
                 "decode": [{"string": index, "special", "text" | {"hex"}}] (ids from "ids"),
                 "wiki": {"count", "fnv1a"} for the whole of wiki.test.raw (only some vocabs)}
"""
import argparse
import ctypes
import json
import os
import random
import sys
import tempfile

import gguf
import llama_cpp

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT_DIR = os.path.join(ROOT, "tests", "golden", "tokenizer")
SEP = b"\n__ggml_vocab_test__\n"

TRICKY = [
    "Hello 👋 world 🌍🚀 family: 👨‍👩‍👧‍👦 flags 🇯🇵🇫🇷",
    "日本語のテキストと漢字、カタカナ。中文：你好，世界！한국어 문장입니다.",
    "مرحبا بالعالم، هذا نص عربي. العدد ١٢٣٤٥",
    "שלום עולם", "Ελληνικά κείμενα και αριθμοί 3,14", "Русский текст: съешь же ещё этих булок",
    "e\u0301 a\u0300 n\u0303 combining: Z\u0351\u036b\u0343a\u0352\u0357l\u0351g\u0311o",
    "ﬁ ﬂ Ⅻ ½ ² ³ ⁴ ① ⓐ ℃ № ™ µ Å",
    "1 12 123 1234 12345 123456 1234567 3.14159 1,000,000 0x7fff 1e-9 ٣٤ ৫৬",
    "it's he's they're we've I'm you'll she'd IT'S HE'S THEY'RE WE'VE I'M YOU'LL SHE'D 'LL 'Re",
    "don't   won't\t\tcan't\n\n'tis 'twas",
    "   leading spaces", "trailing spaces   ", "  both  ", "a  b   c    d     e",
    "\t\ttabs\tand\ttabs\t", "line1\nline2\r\nline3\rline4\n\n\nline5", "\n", "\n\n", " \n ",
    "\u00a0nbsp\u00a0here\u2009thin\u3000ideographic\u2028line\u0085nel",
    "def f(x):\n    return x ** 2  # square\n\nclass A:\n\tpass\n",
    "for (int i = 0; i < n; ++i) { sum += a[i]; }  // C++",
    "<html><body class=\"x\">&amp; &lt;tag&gt;</body></html>",
    "https://example.com/path?query=1&b=2#frag user@example.com",
    "$$$ %%% ^^^ &&& *** ((( ))) --- +++ === ~~~ ``` ||| \\\\\\ /// ??? !!! ... ,,, ;;; :::",
    "!!!!!!!!!! ?????????? .......... ----------",
    "Mr. Smith's dog, Mrs. O'Neil's cat -- and the U.S.A.'s flag!",
    "CamelCaseWord snake_case_word kebab-case-word SCREAMING_CASE",
    "\u200b\u200c\u200d zero width \ufeff bom",
    "Ǆ ǅ ǆ Ǉ ǈ ǉ ΐ ΰ ẞ ß İ ı",
    "a\u0000b control \u0001\u0002\u001f chars \u007f",
    "🙂🙃😉 😀 text😀text 😀 😀😀",
    "x" * 300,
    " " * 40 + "x",
    "Ａｂｃ　ＦＵＬＬＷＩＤＴＨ　１２３",
    "ἀρχῇ ἦν ὁ λόγος",
    "हिन्दी में पाठ। தமிழ் உரை ไทย ข้อความ",
]

INVALID = [b"a\xffb", b"\xc3", b"x\xc3(y", b"\xe2\x82", b"\xed\xa0\x80x", b"\xc0\x80z",
           b"ok\x80\x80ok", b"\xf0\x9f\x98"]


def encode_text(s):
    if isinstance(s, bytes):
        try:
            return s.decode("utf-8")
        except UnicodeDecodeError:
            return {"hex": s.hex()}
    return s


def text_bytes(s):
    return s if isinstance(s, bytes) else s.encode("utf-8")


def load_strings(shared):
    inp = open(os.path.join(shared, "testdata/tokenizer/ggml-vocab-gpt-2.gguf.inp"), "rb").read()
    strings = inp.split(SEP)[:-1]
    wiki = open(os.path.join(shared, "testdata/text/wiki.test.raw"), "rb").read().split(b"\n")
    wiki = [w for w in wiki if 40 <= len(w) <= 400]
    rng = random.Random(20240601)
    strings += rng.sample(wiki, 80)
    strings += [t.encode("utf-8") for t in TRICKY]
    strings += INVALID
    return strings


class Vocab:
    def __init__(self, path):
        self.llm = llama_cpp.Llama(model_path=path, vocab_only=True, verbose=False)
        self.vocab = self.llm._model.vocab

    def tokenize(self, data, add_special, parse_special):
        return self.llm.tokenize(data, add_bos=add_special, special=parse_special)

    def detokenize(self, ids, special):
        arr = (llama_cpp.llama_token * max(1, len(ids)))(*ids)
        size = 64 + 16 * len(ids)
        buf = ctypes.create_string_buffer(size)
        n = llama_cpp.llama_detokenize(self.vocab, arr, len(ids), buf, size, False, special)
        assert 0 <= n <= size, n
        return buf.raw[:n]


def fnv1a(ids):
    h = 0xcbf29ce484222325
    for i in ids:
        for b in (i & 0xffffffff).to_bytes(4, "little"):
            h = ((h ^ b) * 0x100000001b3) & 0xffffffffffffffff
    return format(h, "016x")


def special_texts(path):
    reader = gguf.GGUFReader(path)
    tokens = reader.get_field("tokenizer.ggml.tokens").contents()
    types = reader.get_field("tokenizer.ggml.token_type").contents()
    picked = [t for t, ty in zip(tokens, types) if ty in (2, 3, 4)]
    # Prefer a few distinct kinds: the first few and the longest ones.
    picked = sorted(set(picked[:3] + sorted(picked, key=len)[-2:]), key=picked.index)
    return picked[:4]


def special_cases(vocab, specials):
    texts = ["plain text", "Hello world", ""]
    for i, a in enumerate(specials):
        b = specials[(i + 1) % len(specials)]
        texts += [f"{a}Hello", f"hello {a} world", f"{a}{b} x {a}", f" {a}  {b}\n",
                  f"a{a}\n\nb{b}c"]
    cases = []
    for t in texts:
        for add_special, parse_special in ((True, True), (False, True), (True, False)):
            ids = vocab.tokenize(t.encode("utf-8"), add_special, parse_special)
            cases.append({"text": t, "add_special": add_special, "parse_special": parse_special,
                          "ids": " ".join(map(str, ids))})
    return cases


def decode_cases(vocab, ids_list):
    cases = []
    for index in range(0, len(ids_list), 5):
        for special in (False, True):
            out = vocab.detokenize(ids_list[index], special)
            cases.append({"string": index, "special": special, "text": encode_text(out)})
    return cases


def write_with_pre(src, dst, pre):
    reader = gguf.GGUFReader(src)
    arch = reader.get_field("general.architecture").contents()
    writer = gguf.GGUFWriter(dst, arch)
    for field in reader.fields.values():
        if field.name.startswith("GGUF.") or field.name == "general.architecture":
            continue
        if field.name == "tokenizer.ggml.pre":
            continue
        vtype = field.types[0]
        sub = field.types[-1] if vtype == gguf.GGUFValueType.ARRAY else None
        writer.add_key_value(field.name, field.contents(), vtype, sub_type=sub)
    if pre is not None:
        writer.add_string("tokenizer.ggml.pre", pre)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--shared", default=os.path.join(os.path.dirname(ROOT), "shared"))
    args = ap.parse_args()
    shared = args.shared
    os.makedirs(OUT_DIR, exist_ok=True)
    strings = load_strings(shared)
    with open(os.path.join(OUT_DIR, "strings.json"), "w") as f:
        json.dump({"strings": [encode_text(s) for s in strings]}, f, ensure_ascii=False, indent=0)
    wiki = open(os.path.join(shared, "testdata/text/wiki.test.raw"), "rb").read()

    jobs = []  # (name, vocab path under testdata, pre override, whole-wiki check)
    for name in ("deepseek-llm", "mpt", "refact", "gpt-neox", "baichuan"):
        jobs.append((name, f"tokenizer-extra/ggml-vocab-{name}.gguf", None, True))
    for name in ("llama-spm", "gpt-2"):
        jobs.append((name, f"tokenizer/ggml-vocab-{name}.gguf", None, True))
    for pre in ("default", "llama-bpe", "qwen2", "smollm", "deepseek-llm", "deepseek-coder",
                "deepseek-v3", "falcon", "poro-chat", "viking", "dbrx", "jais-2", "chatglm-bpe",
                "stablelm2", "<absent>"):
        jobs.append((f"gpt-2-pre-{pre.strip('<>')}", "tokenizer/ggml-vocab-gpt-2.gguf", pre,
                     pre in ("llama-bpe", "qwen2")))

    with tempfile.TemporaryDirectory() as tmp:
        for name, rel, pre, whole in jobs:
            path = os.path.join(shared, "testdata", rel)
            if pre is not None:
                derived = os.path.join(tmp, name + ".gguf")
                write_with_pre(path, derived, None if pre == "<absent>" else pre)
                path = derived
            vocab = Vocab(path)
            ids_list = [vocab.tokenize(text_bytes(s), False, False) for s in strings]
            golden = {"vocab": rel, "pre": pre,
                      "ids": [" ".join(map(str, ids)) for ids in ids_list],
                      "special": special_cases(vocab, special_texts(path)),
                      "decode": decode_cases(vocab, ids_list)}
            if whole:
                ids = vocab.tokenize(wiki, False, False)
                golden["wiki"] = {"count": len(ids), "fnv1a": fnv1a(ids)}
            with open(os.path.join(OUT_DIR, name + ".json"), "w") as f:
                json.dump(golden, f, ensure_ascii=False, indent=0)
            print(f"{name}: {len(strings)} strings", file=sys.stderr)


if __name__ == "__main__":
    main()
