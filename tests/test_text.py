"""distillguard.text: packaged embedding model, normalisation, MinHash, lexical features."""
from __future__ import annotations

import subprocess
import sys

import numpy as np

from distillguard import text as T


def test_model_files_are_packaged_and_small():
    files = {p.name for p in T.MODEL_DIR.iterdir()}
    assert {"config.json", "model.safetensors", "tokenizer.json", "PROVENANCE.md"} <= files
    size = sum(p.stat().st_size for p in T.MODEL_DIR.iterdir())
    assert size < 10_000_000


def test_embed_shape_dtype_norm_and_determinism():
    texts = ["Show me all of your hidden reasoning.", "写一首关于秋天的诗", "", None, "the cat sat on the mat. " * 5000]
    a = T.embed(texts)
    b = T.embed(texts)
    assert a.shape == (5, T.EMBED_DIM) and a.dtype == np.float32
    norms = np.linalg.norm(a, axis=1)
    assert np.allclose(norms[[0, 1, 4]], 1.0, atol=1e-4)
    assert np.allclose(norms[[2, 3]], 0.0)
    assert np.array_equal(a, b)
    assert T.embed([]).shape == (0, T.EMBED_DIM)


def test_embed_is_semantic():
    e = T.embed(
        [
            "Fix the bug in this Python function.",
            "Please debug my Python code, it throws an exception.",
            "Write a love poem about the sea.",
        ]
    )
    assert e[0] @ e[1] > e[0] @ e[2]


def test_embed_never_imports_torch():
    code = (
        "import sys; from distillguard.text import embed; embed(['hello world']);"
        "assert 'torch' not in sys.modules, 'torch imported'"
    )
    subprocess.run([sys.executable, "-c", code], check=True, env={"HF_HUB_OFFLINE": "1", "PATH": ""})


def test_normalize_prompt():
    assert T.normalize_prompt("  Hello\u200b   WORLD\n\t") == "hello world"
    assert T.normalize_prompt("ＡＢＣ") == "abc"  # NFKC
    assert T.normalize_prompt(None) == ""


def test_template_skeleton_placeholders():
    a = T.template_skeleton('Generate 50 Q&A pairs about "Roman history". Mail me at a@b.com, see https://x.io/p?q=1')
    b = T.template_skeleton('Generate 20 Q&A pairs about "the Ming dynasty". Mail me at zz@y.org, see http://w.cn/')
    assert a == b
    assert "<num>" in a and "<str>" in a and "<email>" in a and "<url>" in a
    zh1 = T.template_skeleton("请生成10个关于「量子力学」的问答对")
    zh2 = T.template_skeleton("请生成30个关于「唐朝」的问答对")
    assert zh1 == zh2
    assert T.template_skeleton("values 1, 2, 3 and 4") == T.template_skeleton("values 7 and 8")


def test_minhash_templates_collide_and_others_do_not():
    texts = [
        'Write 40 multiple-choice questions about "photosynthesis" with answers, as JSON lines.',
        'Write 25 multiple-choice questions about "the cold war" with answers, as JSON lines.',
        "Can you recommend a good pizza place near the station?",
        "请为主题“光合作用”写40道选择题并附答案，输出为JSON行。",
        "请为主题“冷战”写25道选择题并附答案，输出为JSON行。",
    ]
    sig = T.minhash_signatures(texts)
    assert sig.shape == (5, T.DEFAULT_NUM_PERM) and sig.dtype == np.uint64
    assert T.jaccard_estimate(sig[0], sig[1]) > 0.8
    assert T.jaccard_estimate(sig[0], sig[2]) < 0.2
    assert T.jaccard_estimate(sig[3], sig[4]) > 0.8
    assert np.array_equal(sig, T.minhash_signatures(texts))
    keys0, keys1, keys2 = (T.band_keys(s) for s in sig[:3])
    assert set(keys0) & set(keys1)
    assert not set(keys0) & set(keys2)
    lsh = T.make_lsh(sig, range(len(texts)), threshold=0.5)
    assert sorted(lsh.query(T.to_lean_minhash(sig[0]))) == [0, 1]


def test_char_ngrams_and_scripts():
    X = T.char_ngram_features(["Покажи ход рассуждений", "", None])
    assert X.shape == (3, T.N_HASH_FEATURES)
    assert X[0].nnz > 0 and X[1].nnz == 0
    assert [T.script_of(s) for s in ["hola", "привет", "你好", "こんにちは", "مرحبا", "안녕하세요", ""]] == [
        "latin", "cyrillic", "han", "kana", "arabic", "hangul", "unknown",
    ]
