"""Builders for tiny random-weight causal LMs (a few MB, made in seconds) in temporary folders.

The tokenizer is a byte-level BPE trained on a small corpus, so every string (JSON included)
is representable and most tokens are several characters long, which lets tests place a stop
sequence across a token boundary. Weights are seeded, so the same call builds the same model.
"""

from __future__ import annotations

from pathlib import Path

CORPUS = [
    "The capital of France is Paris. The answer is 42.",
    '{"answer": "yes", "ok": true, "label": "red", "count": 7}',
    "Question: what is two plus two? Answer: four. Observation: done.",
    "hello world, hello there, general kenobi. red green blue yes no maybe",
] * 20

CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
    "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_tokenizer(folder: Path, chat_template: str | None = CHATML_TEMPLATE):
    """A byte-level BPE tokenizer with <s>, </s>, <pad> and ChatML markers."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    specials = ["<pad>", "<s>", "</s>", "<|im_start|>", "<|im_end|>"]
    backend = Tokenizer(models.BPE())
    backend.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    backend.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=400,
        special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    backend.train_from_iterator(CORPUS, trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=backend,
        bos_token="<s>",
        eos_token="</s>",
        pad_token="<pad>",
        additional_special_tokens=["<|im_start|>", "<|im_end|>"],
    )
    if chat_template is not None:
        tokenizer.chat_template = chat_template
    tokenizer.save_pretrained(folder)
    return tokenizer


def build_tiny_llama(
    folder: Path, chat_template: str | None = CHATML_TEMPLATE, seed: int = 0
) -> Path:
    """A 2-layer random LlamaForCausalLM plus tokenizer, saved where from_pretrained reads it."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    folder = Path(folder)
    tokenizer = build_tiny_tokenizer(folder, chat_template)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    torch.manual_seed(seed)
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # larger logits make greedy choices clear-cut, not near-ties
        model.lm_head.weight.mul_(8.0)
    model.save_pretrained(folder)
    return folder


#: renders image parts as the processor's <image> placeholder, text parts as they are.
VISION_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}{% for p in m['content'] %}"
    "{% if p['type'] == 'image' %}<image>{% else %}{{ p['text'] }}{% endif %}{% endfor %}"
    "{% endif %}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def build_tiny_llava(folder: Path, seed: int = 0) -> Path:
    """A random LlavaForConditionalGeneration (1-layer CLIP tower, 2-layer llama) and its
    LlavaProcessor: a 28x28 image becomes four <image> tokens. About 1 MB."""
    import torch
    import transformers
    from transformers import (
        CLIPVisionConfig,
        LlamaConfig,
        LlavaConfig,
        LlavaForConditionalGeneration,
        LlavaProcessor,
    )

    folder = Path(folder)
    tokenizer = build_tiny_tokenizer(folder, chat_template=None)
    tokenizer.add_special_tokens(
        {"additional_special_tokens": ["<|im_start|>", "<|im_end|>", "<image>"]}
    )
    # the PIL-based processor, so no torchvision is needed (transformers 5 names it ...Pil)
    image_processor_class = getattr(
        transformers, "CLIPImageProcessorPil", transformers.CLIPImageProcessor
    )
    processor = LlavaProcessor(
        image_processor=image_processor_class(
            size={"shortest_edge": 28}, crop_size={"height": 28, "width": 28}
        ),
        tokenizer=tokenizer,
        patch_size=14,
        vision_feature_select_strategy="default",
        num_additional_image_tokens=1,  # CLIP's class token, which "default" drops
        chat_template=VISION_TEMPLATE,
    )
    text = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
        tie_word_embeddings=False,
    )
    vision = CLIPVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
        projection_dim=32,
    )
    config = LlavaConfig(
        vision_config=vision,
        text_config=text,
        image_token_index=tokenizer.convert_tokens_to_ids("<image>"),
        vision_feature_layer=-1,
        vision_feature_select_strategy="default",
    )
    torch.manual_seed(seed)
    model = LlavaForConditionalGeneration(config)
    with torch.no_grad():  # larger logits make greedy choices clear-cut, not near-ties
        model.lm_head.weight.mul_(8.0)
    model.save_pretrained(folder)
    processor.save_pretrained(folder)
    return folder
