"""Grammar-constrained decoding for in-process models (Transformers and MLX), via xgrammar.

A `Grammar` is compiled once per tokenizer into an xgrammar matcher program. During decoding,
each constrained row keeps its own matcher: it accepts the token sampled last, then masks
every token that would break the grammar. Rows are independent, so a micro-batch may mix
constrained and free rows, and rows with different grammars.
"""

from __future__ import annotations

import json
import threading
from typing import Any

from hydragent.grammar import Grammar

_COMPILERS: dict[int, tuple[Any, Any]] = {}
_COMPILERS_LOCK = threading.Lock()


def _xgrammar() -> Any:
    try:
        import xgrammar
    except ImportError as error:
        raise ImportError(
            "grammar= on local models needs xgrammar: pip install 'hydragent[transformers]' "
            "(or 'hydragent[mlx]')"
        ) from error
    return xgrammar


def compile_grammar(
    tokenizer: Any, grammar: Grammar, vocab_size: int, stop_token_ids: list[int]
) -> Any:
    """The xgrammar program for `grammar` on this tokenizer (compilers are cached)."""
    xgr = _xgrammar()
    key = id(tokenizer)
    with _COMPILERS_LOCK:
        if key not in _COMPILERS:
            info = xgr.TokenizerInfo.from_huggingface(
                tokenizer, vocab_size=vocab_size, stop_token_ids=stop_token_ids
            )
            _COMPILERS[key] = (tokenizer, xgr.GrammarCompiler(info))
        compiler = _COMPILERS[key][1]
    if grammar.type == "json_object":
        return compiler.compile_builtin_json_grammar()
    if grammar.type == "json_schema":
        # compact output: free whitespace lets a weak model pad forever and never close
        return compiler.compile_json_schema(json.dumps(grammar.schema), any_whitespace=False)
    if grammar.type == "regex":
        return compiler.compile_regex(grammar.pattern)
    if grammar.type == "choice":
        alternatives = " | ".join(json.dumps(choice) for choice in grammar.choices or [])
        return compiler.compile_grammar(f"root ::= {alternatives}")
    raise ValueError(f"grammar={grammar.type} has no local form; valid: {_LOCAL_KINDS}")


_LOCAL_KINDS = "json_object, json_schema, regex, choice"
LOCAL_GRAMMARS = frozenset(_LOCAL_KINDS.split(", "))


class RowMatchers:
    """One matcher per batch row (None for unconstrained rows) and their shared token bitmask."""

    def __init__(self, programs: list[Any | None], vocab_size: int) -> None:
        xgr = _xgrammar()
        self.matchers = [xgr.GrammarMatcher(p) if p is not None else None for p in programs]
        self.bitmask = xgr.allocate_token_bitmask(len(programs), vocab_size)
        self.vocab_size = vocab_size
        self._primed = False

    def step(self, last_tokens: list[int]) -> list[int]:
        """Accept each row's last sampled token, refill masks; returns the rows to mask.

        The first call sees the prompt's last token, which the grammar never saw, so it only
        fills masks. A row whose matcher has terminated, or that rejects a token (the batch
        padded it after it finished), is left alone from then on.
        """
        rows: list[int] = []
        for row, matcher in enumerate(self.matchers):
            if matcher is None:
                continue
            accepted = not self._primed or matcher.accept_token(last_tokens[row])
            if not accepted:
                self.matchers[row] = None
                continue
            if matcher.is_terminated():
                self.matchers[row] = None
                continue
            matcher.fill_next_token_bitmask(self.bitmask, row)
            rows.append(row)
        self._primed = True
        return rows

    def allowed(self, row: int) -> Any:
        """Boolean numpy mask over the vocabulary for one row (for non-torch engines)."""
        import numpy as np

        bits = self.bitmask[row].numpy().view(np.uint8)
        return np.unpackbits(bits, bitorder="little")[: self.vocab_size].astype(bool)


class TorchGrammarProcessor:
    """A transformers logits processor applying `RowMatchers` to a (batch, vocab) score tensor."""

    def __init__(self, programs: list[Any | None], vocab_size: int) -> None:
        self.rows = RowMatchers(programs, vocab_size)

    def __call__(self, input_ids: Any, scores: Any) -> Any:
        xgr = _xgrammar()
        rows = self.rows.step(input_ids[:, -1].tolist())
        if rows:
            bitmask = self.rows.bitmask.to(scores.device)
            xgr.apply_token_bitmask_inplace(
                scores, bitmask, vocab_size=self.rows.vocab_size, indices=rows
            )
        return scores


class MlxGrammarProcessor:
    """An mlx_lm logits processor: `(tokens, logits) -> logits` for one sequence."""

    def __init__(self, program: Any, vocab_size: int) -> None:
        self.rows = RowMatchers([program], vocab_size)

    def __call__(self, tokens: Any, logits: Any) -> Any:
        import mlx.core as mx

        if not self.rows.step([int(tokens[-1].item())]):
            return logits
        allowed = mx.array(self.rows.allowed(0))
        width = logits.shape[-1]
        if width > allowed.shape[0]:
            allowed = mx.concatenate([allowed, mx.zeros(width - allowed.shape[0], dtype=mx.bool_)])
        return mx.where(allowed[:width], logits, -float("inf"))
