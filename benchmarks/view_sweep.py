"""A synthetic sweep folder in the runner's record format (docs: TEAM interface 6), for the
viewer's browser tests and benchmarks/view_bench.py: jobs x samples with transcripts of every
kind (direct with reasoning, tool calls and results, code steps and observations), errors of
two causes, and replicate seeds, so that pooling, flips and error filters have work to do.

Run: python benchmarks/view_sweep.py OUT_DIR [--jobs 20] [--samples 2000]
"""

from __future__ import annotations

import argparse
import json
import random
from pathlib import Path
from typing import Any

MODELS = ("gpt-4o-mini", "claude-3-5-haiku-20241022", "my-local-model", "gpt-4o")


def _transcript(kind: int, question: str, answer: str, rng: random.Random) -> list[dict]:
    system = {"role": "system", "content": "You are a careful assistant. Answer briefly."}
    user = {"role": "user", "content": question}
    if kind == 0:
        return [
            system,
            user,
            {
                "role": "assistant",
                "content": answer,
                "reasoning_content": f"Let me think. The question asks: {question[:60]}... "
                f"so the answer is {answer}.",
            },
        ]
    if kind == 1:
        a, b = rng.randint(1, 99), rng.randint(1, 99)
        call = {
            "id": "call_1",
            "type": "function",
            "function": {"name": "calculator", "arguments": {"expression": f"{a}*{b}"}},
        }
        final = {
            "id": "call_2",
            "type": "function",
            "function": {"name": "final_answer", "arguments": {"answer": answer}},
        }
        return [
            system,
            user,
            {"role": "tool-call", "content": "Calling tools", "tool_calls": [call], "step": 1},
            {
                "role": "tool-response",
                "tool_call_id": "call_1",
                "name": "calculator",
                "content": f"Observation:\n{a * b}",
                "step": 1,
            },
            {"role": "tool-call", "content": "Calling tools", "tool_calls": [final], "step": 2},
        ]
    code = f"x = {rng.randint(1, 9)} * 7\nprint(x)"
    return [
        system,
        user,
        {
            "role": "assistant",
            "content": f"Thought: compute it.\n<code>\n{code}\n</code>",
            "code": code,
            "step": 1,
        },
        {"role": "user", "content": "Observation:\nExecution logs:\n42", "step": 1},
        {
            "role": "assistant",
            "content": f"<code>final_answer({answer!r})</code>",
            "code": f"final_answer({answer!r})",
            "step": 2,
        },
    ]


def write_sweep(
    root: Path, jobs: int = 4, samples: int = 30, seed: int = 0, groups: int = 0
) -> list[Path]:
    """Write `jobs` job folders 0..jobs-1 under `root`; return them. Jobs vary in
    `model.model_id` (MODELS in turn) and `seed` (replicates: two per model when jobs <= 8,
    so jobs 0 and 1 share a model), and job 1 has more errors than the others."""
    rng = random.Random(seed)
    root.mkdir(parents=True, exist_ok=True)
    difficulty = [rng.random() for _ in range(samples)]
    questions = [
        f"Question {i}: what is {i} times 7? Explain the steps, then answer with a number."
        for i in range(samples)
    ]
    folders = []
    replicates = max(2, -(-jobs // len(MODELS)))  # seeds per model: 20 jobs = 4 models x 5
    for number in range(jobs):
        which = (number // replicates) % len(MODELS)
        model = MODELS[which]
        replicate = number % replicates
        skill = 0.35 + 0.15 * which
        overrides = [
            "model=litellm",
            f"model.model_id={model}",
            f"seed={replicate}",
            "task=arithmetic",
        ]
        folder = root / str(number)
        (folder / ".hydra").mkdir(parents=True, exist_ok=True)
        (folder / ".hydra" / "overrides.yaml").write_text(
            "".join(f"- {item}\n" for item in overrides)
        )
        records: list[dict[str, Any]] = []
        for i in range(samples):
            target = str(i * 7)
            right = rng.random() < skill + 0.4 * (difficulty[i] - 0.5)
            answer = target if right else str(i * 7 + rng.randint(1, 5))
            errored = (number == 1 and i % 7 == 3) or rng.random() < 0.01
            tokens_in, tokens_out = rng.randint(80, 400), rng.randint(5, 120)
            record = {
                "id": f"arith-{i:05d}",
                "index": i,
                "input": questions[i],
                "target": target,
                "answer": None if errored else answer,
                "scores": {} if errored else {"exact": float(right)},
                "status": "error" if errored else "ok",
                "error": (
                    ("RateLimitError: 429 Too Many Requests" if i % 2 else "timed out after 30 s")
                    if errored
                    else None
                ),
                "error_type": ("RateLimitError" if i % 2 else "TimeoutError") if errored else None,
                "messages": _transcript(i % 3, questions[i], answer, rng),
                "token_usage": {
                    "input_tokens": tokens_in,
                    "output_tokens": tokens_out,
                    "total_tokens": tokens_in + tokens_out,
                },
                "judge_token_usage": {"input_tokens": 0, "output_tokens": 0, "total_tokens": 0},
                "cost_usd": None
                if model == "my-local-model"
                else (tokens_in + 4 * tokens_out) * 1e-7,
                "latency_s": round(rng.uniform(0.2, 3.0), 3),
                "model": model,
                "deployment": f"{model}-east" if i % 4 == 0 else None,
                "sandbox": "bwrap" if i % 3 == 2 else None,
                "job_id": str(number),
                "overrides": overrides,
                "config_hash": f"hash{number:04d}",
                "started_at": "2026-11-27T12:00:00+00:00",
            }
            if groups:
                record["group"] = f"doc-{i % groups}"
            records.append(record)
        with (folder / "samples.jsonl").open("w") as handle:
            for record in records:
                handle.write(json.dumps(record) + "\n")
        errors = [r for r in records if r["status"] != "ok"]
        summary = {
            "counts": {"total": samples, "ok": samples - len(errors), "error": len(errors)},
            "overrides": overrides,
            "job_id": str(number),
            "model": model,
            "task": "arithmetic",
            "backend": "LiteLLMModel",
            "wall_time_s": round(rng.uniform(20, 90), 2),
            "errors": [
                {
                    "cause": cause,
                    "count": sum(r["error"] == cause for r in errors),
                    "example_id": next(r["id"] for r in errors if r["error"] == cause),
                    "fix": fix,
                }
                for cause, fix in (
                    ("RateLimitError: 429 Too Many Requests", "lower runner.max_concurrency"),
                    ("timed out after 30 s", "raise runner.sample_timeout_s"),
                )
                if any(r["error"] == cause for r in errors)
            ],
        }
        (folder / "summary.json").write_text(json.dumps(summary, indent=1))
        folders.append(folder)
    return folders


def main() -> None:
    cli = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    cli.add_argument("out", type=Path)
    cli.add_argument("--jobs", type=int, default=20)
    cli.add_argument("--samples", type=int, default=2000)
    args = cli.parse_args()
    write_sweep(args.out, args.jobs, args.samples)
    print(f"wrote {args.jobs} jobs x {args.samples} samples under {args.out}")


if __name__ == "__main__":
    main()
