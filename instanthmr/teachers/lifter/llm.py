"""Running the lifter LLM: loading (base model + optional PEFT LoRA adapter) and batched greedy generation.

Training/annotation side only (torch + transformers; ``peft`` for adapters). Loading failures (no network,
missing folder, missing package) raise :class:`LifterLoadError` with one line naming what failed.
``build_tiny_causal_lm`` makes a randomly initialised, few-kilobyte model + tokenizer on disk so the whole
path (chat template -> generate -> decode -> parse) runs in tests and smoke checks without a download.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from instanthmr.core.errors import first_line


class LifterLoadError(RuntimeError):
    """The lifter model, adapter or a package it needs could not be loaded."""


@dataclass
class Generation:
    """One generated answer: ``text`` (the new tokens only, decoded), ``new_tokens`` count, and
    ``truncated`` (stopped by ``max_new_tokens`` rather than an end-of-sequence token)."""

    text: str
    new_tokens: int
    truncated: bool


def _device_and_dtype(device: str, dtype: str):
    import torch

    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if dtype == "auto":
        dtype = "bfloat16" if device.startswith("cuda") else "float32"
    return device, getattr(torch, dtype)


def _short(e: Exception) -> str:
    return first_line(e, 300)


def looks_like_path(name: str) -> bool:
    """Whether a model name is meant as a local folder rather than a hub id (``owner/name``): absolute,
    ``~``- or ``.``-relative, more than one ``/``, a Windows separator, or something that exists."""
    return (name.startswith(("/", "~", ".")) or name.count("/") > 1 or "\\" in name
            or Path(name).expanduser().exists())


def check_local_model(name: str, what: str) -> None:
    """Raise :class:`LifterLoadError` when ``name`` is meant as a local folder that is not one, so the
    message names the folder instead of a failed hub download (``what``: "base model" or "LoRA adapter")."""
    if not looks_like_path(name):
        return
    path = Path(name).expanduser()
    if not path.exists():
        raise LifterLoadError(f"{what} folder not found: {name}")
    if not path.is_dir():
        raise LifterLoadError(f"{what} {name} is a file; give the folder that holds config.json and the weights")


class LifterLM:
    """A causal LM that answers the lifter protocol's chat messages.

    >>> lm = LifterLM.load("mistralai/Ministral-3b-instruct", adapter="path/to/lora")  # doctest: +SKIP
    >>> lm.generate([build_messages(kp2d)])[0].text                                     # doctest: +SKIP
    """

    def __init__(self, model, tokenizer, device: str = "cpu", max_new_tokens: int = 2048):
        self.model, self.tokenizer = model, tokenizer
        self.device, self.max_new_tokens = device, int(max_new_tokens)
        self.model.eval()
        if self.tokenizer.pad_token_id is None:  # Mistral/Llama tokenizers ship without one
            self.tokenizer.pad_token = self.tokenizer.eos_token
        self.tokenizer.padding_side = "left"  # decoder-only batching: pad on the left
        self.system_in_user = False

    @classmethod
    def load(cls, base_model: str, adapter: str | None = None, device: str = "auto", dtype: str = "auto",
             max_new_tokens: int = 2048) -> "LifterLM":
        """Load ``base_model`` (hub id or folder) and, if given, a PEFT LoRA ``adapter`` (hub id or folder)."""
        try:
            import torch  # noqa: F401
            from transformers import AutoModelForCausalLM, AutoTokenizer
        except ImportError as e:
            raise LifterLoadError(f"transformers/torch not installed ({_short(e)}); pip install transformers") from None
        check_local_model(base_model, "base model")
        if adapter:
            check_local_model(adapter, "LoRA adapter")
        device, torch_dtype = _device_and_dtype(device, dtype)
        offline = os.environ.get("HF_HUB_OFFLINE", "") not in ("", "0")
        try:
            tok = AutoTokenizer.from_pretrained(base_model, local_files_only=offline)
            model = AutoModelForCausalLM.from_pretrained(base_model, dtype=torch_dtype, local_files_only=offline)
        except Exception as e:  # hub/network/file errors come in many classes; the message is what matters
            raise LifterLoadError(f"cannot load base model {base_model!r}: {_short(e)} "
                                  "(no network? pass a local folder)") from None
        if adapter:
            try:
                from peft import PeftModel
            except ImportError:
                raise LifterLoadError(f"loading adapter {adapter!r} needs the 'peft' package: pip install peft") from None
            try:
                model = PeftModel.from_pretrained(model, adapter)
            except Exception as e:
                raise LifterLoadError(f"cannot load LoRA adapter {adapter!r}: {_short(e)}") from None
        return cls(model.to(device), tok, device, max_new_tokens)

    def prompt_text(self, messages: list[dict]) -> str:
        """The chat-templated prompt, ending where the assistant's answer starts.

        Some instruct templates (Mistral's) reject a system role; then the system text is put before the
        user text in one user turn, the usual convention for those models.
        """
        if not self.system_in_user:
            try:
                return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            except Exception:  # jinja2 TemplateError: "Conversation roles must alternate ..." and the like
                self.system_in_user = True
        sys_msgs = [m["content"] for m in messages if m["role"] == "system"]
        rest = [dict(m) for m in messages if m["role"] != "system"]
        if sys_msgs and rest:
            rest[0]["content"] = "\n\n".join(sys_msgs + [rest[0]["content"]])
        return self.tokenizer.apply_chat_template(rest, tokenize=False, add_generation_prompt=True)

    def generate(self, batch: list[list[dict]]) -> list[Generation]:
        """Greedy answers for a batch of chat conversations (one batched ``generate`` call)."""
        import torch

        prompts = [self.prompt_text(m) for m in batch]
        enc = self.tokenizer(prompts, return_tensors="pt", padding=True, add_special_tokens=False).to(self.device)
        with torch.inference_mode():
            out = self.model.generate(**enc, max_new_tokens=self.max_new_tokens, do_sample=False,
                                      pad_token_id=self.tokenizer.pad_token_id)
        new = out[:, enc["input_ids"].shape[1]:]
        eos = self.tokenizer.eos_token_id
        eos_ids = set(eos if isinstance(eos, (list, tuple)) else [eos])
        results = []
        for row in new.tolist():
            ended = next((i for i, t in enumerate(row) if t in eos_ids), None)
            toks = row if ended is None else row[:ended]
            results.append(Generation(self.tokenizer.decode(toks, skip_special_tokens=True), len(toks), ended is None))
        return results


_TINY_TEMPLATE = (
    "{% for m in messages %}<|{{ m['role'] }}|>\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>\n{% endif %}"
)


def build_tiny_causal_lm(out_dir, seed: int = 0, vocab_size: int = 400) -> Path:
    """Write a tiny randomly initialised Llama-architecture LM and a byte-level BPE tokenizer trained on
    protocol text to ``out_dir`` (loadable with :meth:`LifterLM.load`). Its answers are noise: it exercises
    the code path, not the lifting."""
    import numpy as np
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    from instanthmr.teachers.lifter.protocol import build_messages, format_target

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    corpus = []
    for _ in range(2):
        msgs = build_messages(rng.normal(size=(133, 2)) * 100)
        corpus += [m["content"] for m in msgs] + [format_target(rng.normal(size=(133, 3)))]
    special = ["<unk>", "<s>", "</s>", "<pad>"]
    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(corpus, trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=special,
                                                        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                                        show_progress=False))
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, unk_token="<unk>", bos_token="<s>", eos_token="</s>",
                                   pad_token="<pad>")
    fast.chat_template = _TINY_TEMPLATE
    fast.save_pretrained(out)
    torch.manual_seed(seed)
    cfg = LlamaConfig(vocab_size=len(fast), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                      num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=8192,
                      bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id)
    LlamaForCausalLM(cfg).save_pretrained(out)
    return out
