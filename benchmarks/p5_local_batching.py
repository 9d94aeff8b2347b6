"""P5 local batching: a tiny Transformers model on CPU, 8 concurrent requests vs one at a time.

The model has random weights and is written to a temporary folder in a second (no hub), so the
figure isolates what micro-batching saves: one padded `generate` per wave instead of one per
request. Throughput is output tokens per second; the outputs of both modes are also compared
(under greedy decoding they should be identical).

Target: concurrent tokens/s >= 3x one at a time.
Run: python benchmarks/p5_local_batching.py [--size tiny|full] [--requests 8] [--repeats R]
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from common import Target, parser, write_record
from local_batching import compare, prompts

NAME = "p5_local_batching"
SIZES = {
    "tiny": {"requests": 2, "max_new_tokens": 8, "repeats": 1},
    "full": {"requests": 8, "max_new_tokens": 64, "repeats": 5},
}
CHAT_TEMPLATE = (
    "{% for m in messages %}<s>{{ m['role'] }}\n{{ m['content'] }}</s>\n{% endfor %}"
    "{% if add_generation_prompt %}<s>assistant\n{% endif %}"
)


def write_tiny_model(folder: Path, hidden_size: int = 64, layers: int = 2) -> Path:
    """A random-weight Llama with a byte-level BPE tokenizer, saved as a local checkpoint."""
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    bpe = Tokenizer(models.BPE(unk_token=None))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    bpe.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=512,
        special_tokens=["<pad>", "<s>", "</s>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
    )
    corpus = ["count the apples and the pears", "question answer user assistant"] * 50
    bpe.train_from_iterator(corpus, trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=bpe, bos_token="<s>", eos_token="</s>", pad_token="<pad>"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=hidden_size,
        intermediate_size=hidden_size * 2,
        num_hidden_layers=layers,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=512,
        pad_token_id=tokenizer.pad_token_id,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
    )
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


def main() -> None:
    cli = parser(NAME, __doc__.splitlines()[0])
    cli.add_argument("--requests", type=int, default=None, help="concurrent requests")
    cli.add_argument("--max-new-tokens", type=int, default=None)
    args = cli.parse_args()
    size = SIZES[args.size]
    requests = args.requests or size["requests"]
    max_new_tokens = args.max_new_tokens or size["max_new_tokens"]
    repeats = args.repeats or size["repeats"]

    from hydragent.models.transformers import TransformersModel

    with tempfile.TemporaryDirectory(prefix="hydragent-p5-") as folder:
        checkpoint = write_tiny_model(Path(folder))
        models = [
            TransformersModel(
                model_id=str(checkpoint),
                device_map="cpu",
                max_new_tokens=max_new_tokens,
                max_batch_size=max_batch_size,
            )
            for max_batch_size in (requests, 1)
        ]
        try:
            results = compare(
                *models,
                prompts(requests),
                repeats,
                f"P5 local batching: tiny random Llama on CPU, {requests} requests, "
                f"{max_new_tokens} new tokens, median of {repeats}",
            )
        finally:
            for model in models:
                model.cleanup()
    write_record(
        NAME,
        args,
        {
            "requests": requests,
            "max_new_tokens": max_new_tokens,
            "repeats": repeats,
            "model": "random Llama, hidden 64, 2 layers, vocab 512",
            "device": "cpu",
        },
        results,
        [Target("micro-batched tokens/s over one at a time", results["speedup"], 3.0)],
    )


if __name__ == "__main__":
    main()
