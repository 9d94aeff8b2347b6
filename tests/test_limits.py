"""`limits`, as the store and the governor see it: shared rates, leases that expire, a shared
slow-down after a 429, and a budget that no set of concurrent calls can pass.

The CLI stories (sweeps against a loopback server that answers 429) are in
test_limits_cli.py; Redis and Ray in test_limits_redis.py.
"""

from __future__ import annotations

import json
import random
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from hydragent.config import ConfigError, compose
from hydragent.config.assemble import assemble
from hydragent.limits import BudgetExhausted, CallTooLarge, Estimate, Governor
from hydragent.limits.model import ratelimit_wait
from hydragent.limits.stores import open_store
from hydragent.resume_rule import config_hash

REPO = Path(__file__).resolve().parent.parent
STORES = ["sqlite", "redis"]
pytest_plugins = ["limits_support"]  # the redis_db fixture


@pytest.fixture(params=STORES)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """One shared store of each kind: a SQLite file, and a Redis database (emptied)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'limits.sqlite'}"
    return str(request.getfixturevalue("redis_db"))


def dollars(usage: dict) -> float:
    """A price list: $1 per million input tokens, $4 per million output tokens."""
    return (usage.get("input_tokens", 0) * 1 + usage.get("output_tokens", 0) * 4) / 1e6


def problems(overrides: list[str]) -> list[str]:
    with pytest.raises(ConfigError) as error:
        assemble(compose(overrides), dry_run=True)
    return error.value.problems


# --- config: the node, its errors, and config_hash ---------------------------------------


@pytest.mark.parametrize(
    "url", ["foo", "sqlite://relative", "redis://host:notaport/0", "redis://h:1/x"]
)
def test_a_bad_store_url_names_limits_store_and_the_valid_forms(url: str) -> None:
    found = problems(["model=scripted", f"limits.store={url}"])
    assert len(found) == 1, found
    assert found[0].startswith(f"limits.store={url!r}") or found[0].startswith("limits.store")
    assert "auto, sqlite:///PATH, redis://HOST:PORT/DB" in found[0]


def test_an_unknown_limits_key_names_the_valid_keys() -> None:
    found = problems(["model=scripted", "+limits.rpm=5"])
    assert any("limits.rpm" in p and "requests_per_minute" in p for p in found), found


def test_a_budget_for_a_model_with_no_known_price_is_a_config_error_whose_fix_works_as_typed() -> (
    None
):
    found = problems(["model=scripted", "limits.budget_usd=1"])
    (line,) = [p for p in found if p.startswith("limits.budget_usd=1")]
    fix = line.split("dollars per million tokens: ", 1)[1].split(" (", 1)[0].split()
    assert fix == ["pricing.input_per_mtok=0.5", "pricing.output_per_mtok=1.5"], line
    # the fix, typed exactly as the error gives it, assembles the same config (and so do
    # the `+key` and the whole-node forms)
    for forms in (fix, ["+pricing.input_per_mtok=1", "+pricing.output_per_mtok=4"]):
        settings = assemble(
            compose(["model=scripted", "limits.budget_usd=1", *forms]), dry_run=True
        ).settings
        assert settings["pricing"]["input_per_mtok"] > 0
    whole = compose(["model=scripted", "pricing={input_per_mtok:1,output_per_mtok:4}"])
    assert assemble(whole, dry_run=True).settings["pricing"]["output_per_mtok"] == 4


def test_the_pricing_node_is_typed_and_unset_by_default() -> None:
    """`pricing` declares its keys (a misspelt one: test_limits_cli.py); a price with one
    side unset names the other; and the declared, empty node is no pricing and hashes as
    `pricing: null` did, so runs made before the node was declared still resume."""
    found = problems(["model=scripted", "pricing.input_per_mtok=1"])
    assert any("pricing.output_per_mtok is not set" in p for p in found), found
    assert assemble(compose(["model=scripted"]), dry_run=True).settings["pricing"] is None
    declared = {"input_per_mtok": None, "output_per_mtok": None, "cached_input_per_mtok": None}
    assert config_hash({"seed": 0, "pricing": declared}) == config_hash(
        {"seed": 0, "pricing": None}
    )


def test_a_budget_needs_an_output_cap() -> None:
    found = problems(
        [
            "model=scripted",
            "limits.budget_usd=1",
            "pricing.input_per_mtok=1",
            "pricing.output_per_mtok=1",
            "generation.max_tokens=null",
        ]
    )
    assert any("generation.max_tokens" in p for p in found), found


def test_limits_never_enter_the_config_hash_so_a_larger_budget_resumes() -> None:
    base = {"model": {"model_id": "m"}, "seed": 0}
    with_limits = {**base, "limits": {"budget_usd": 1.0, "requests_per_minute": 60}}
    larger = {**base, "limits": {"budget_usd": 9.0, "store": "redis://127.0.0.1:6379/0"}}
    assert config_hash(base) == config_hash(with_limits) == config_hash(larger)


# --- the store: leases, slow-downs, reservations -----------------------------------------


def test_a_crashed_holders_lease_expires_and_its_reservation_counts_as_spent(
    tmp_path: Path, store_url: str
) -> None:
    store = open_store(store_url, tmp_path)
    assert store.take_slot("k", 1, ttl_s=0.2) is not None
    assert store.take_slot("k", 1, ttl_s=0.2) is None  # the one slot is held
    rid, _ = store.reserve(0.6, budget=1.0, ttl_s=0.2)
    assert rid is not None
    assert store.reserve(0.6, budget=1.0, ttl_s=0.2) == (None, pytest.approx(0.6))
    time.sleep(0.3)  # the holder "crashed": it never released or settled
    assert store.take_slot("k", 1, ttl_s=5) is not None
    assert store.reserve(0.6, budget=1.0, ttl_s=5) == (None, 0.0)  # 0.6 spent: no room
    assert store.spent() == pytest.approx(0.6)
    store.settle(rid, 0.6, 0.1)  # the late settle adds nothing: the worst case was counted
    assert store.spent() == pytest.approx(0.6)


def test_a_429_seen_by_one_process_slows_every_sharer(tmp_path: Path, store_url: str) -> None:
    first, second = open_store(store_url, tmp_path), open_store(store_url, tmp_path)
    leases = [first.take_slot("k", 8, ttl_s=60) for _ in range(8)]
    assert second.take_slot("k", 8, ttl_s=60) is None
    first.slow_down("k", 0.5)
    assert 0.3 < second.pause_left("k") <= 0.5
    for lease in leases:
        first.release_slot(lease, "k", 8, grow=False)
    taken = [second.take_slot("k", 8, ttl_s=60) for _ in range(8)]
    assert sum(lease is not None for lease in taken) == 4  # the cap halved: 8 -> 4


def test_rate_limit_headers_give_the_shared_pause() -> None:
    class Response:
        def __init__(self, status: int, headers: dict) -> None:
            self.status_code, self.headers = status, headers

    class Failure(Exception):
        def __init__(self, status: int, headers: dict) -> None:
            super().__init__("failed")
            self.response = Response(status, headers)

    assert ratelimit_wait(Failure(429, {"Retry-After": "3"})) == 3.0
    assert ratelimit_wait(Failure(429, {})) == 1.0
    exhausted = {"x-ratelimit-remaining-requests": "0", "x-ratelimit-reset-requests": "6m0s"}
    assert ratelimit_wait(Failure(400, exhausted)) == 360.0
    assert ratelimit_wait(Failure(500, {"x-ratelimit-remaining-requests": "7"})) is None


# --- the rate, shared by processes --------------------------------------------------------

WORKER = """
import json, sys, time
from hydragent.limits import Governor, Estimate
from hydragent.limits.stores import open_store
governor = Governor(open_store(sys.argv[1], "."), "k", requests_per_minute=float(sys.argv[2]))
stamps = []
for _ in range(int(sys.argv[3])):
    with governor.acquire(Estimate(10, 3, 5)):
        stamps.append(time.time())
print(json.dumps(stamps))
"""


def test_processes_sharing_a_store_never_exceed_the_request_rate(store_url: str) -> None:
    """4 processes x 10 calls at 600/min: the calls are spaced 0.1 s apart across all of
    them, so no second holds more than 10, and 40 calls take 3.9 s."""
    per_minute, calls, processes = 600.0, 10, 4
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, store_url, str(per_minute), str(calls)],
            stdout=subprocess.PIPE,
            text=True,
        )
        for _ in range(processes)
    ]
    stamps = sorted(t for w in workers for t in json.loads(w.communicate(timeout=120)[0]))
    assert len(stamps) == calls * processes
    interval = 60 / per_minute
    for i, start in enumerate(stamps):  # every 1 s window
        inside = [t for t in stamps[i:] if t < start + 1.0]
        # +1 at the window's edge, +1 because a stamp is taken just after its admission and
        # a loaded machine may delay one
        assert len(inside) <= 1.0 / interval + 2, (start, len(inside))
    span = stamps[-1] - stamps[0]
    assert span >= (len(stamps) - 1) * interval * 0.95


# --- the budget: never a cent over --------------------------------------------------------


def spend_concurrently(
    url: str, budget: float, threads: int, calls: int, seed: int
) -> tuple[float, int, int]:
    """`threads` workers each make up to `calls` calls of random size through one governor;
    each settles at a random share of its worst case, or fails (settled at the worst case).
    Returns (spent, calls made, calls refused by the budget)."""
    store = open_store(url, Path("."))
    governor = Governor(store, "k", budget_usd=budget, price=dollars, max_concurrency=threads)
    made = refused = 0
    lock = threading.Lock()

    def worker(index: int) -> None:
        nonlocal made, refused
        rng = random.Random(seed * 1000 + index)
        for _ in range(calls):
            guess = Estimate(rng.randint(10, 2000), 1, rng.randint(1, 500))
            try:
                with governor.acquire(guess) as lease:
                    time.sleep(rng.random() * 0.002)
                    if rng.random() < 0.1:
                        raise ConnectionError("the call failed after it may have been billed")
                    share = rng.random()
                    lease.settle(
                        {
                            "input_tokens": int(guess.prompt_tokens * share),
                            "output_tokens": int(guess.max_tokens * share),
                        }
                    )
                with lock:
                    made += 1
            except BudgetExhausted:
                with lock:
                    refused += 1
            except ConnectionError:
                with lock:
                    made += 1

    pool = [threading.Thread(target=worker, args=(i,)) for i in range(threads)]
    for thread in pool:
        thread.start()
    for thread in pool:
        thread.join()
    spent = store.spent()
    store.close()
    return spent, made, refused


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    budget=st.floats(min_value=0.0, max_value=0.05),
    threads=st.integers(min_value=1, max_value=64),
    seed=st.integers(min_value=0, max_value=10_000),
)
def test_spend_never_exceeds_the_budget_whatever_the_budget_and_concurrency(
    tmp_path: Path, budget: float, threads: int, seed: int
) -> None:
    url = f"sqlite:///{tmp_path / f'budget-{seed}-{threads}.sqlite'}"
    spent, made, refused = spend_concurrently(url, budget, threads, calls=4, seed=seed)
    assert spent <= budget + 1e-12
    assert made + refused == threads * 4
    if refused:  # refused only when the largest call could not fit
        assert budget - spent < dollars({"input_tokens": 2000, "output_tokens": 500})


def test_processes_sharing_one_budget_never_pass_it_together(store_url: str) -> None:
    script = (
        "import sys, json; sys.path[:0] = [sys.argv[4]]; "
        "from test_limits import spend_concurrently; "
        "print(json.dumps(spend_concurrently(sys.argv[1], float(sys.argv[2]), 16, 20, "
        "int(sys.argv[3]))))"
    )
    budget = 0.02
    workers = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                script,
                store_url,
                str(budget),
                str(seed),
                str(REPO / "tests"),
            ],
            stdout=subprocess.PIPE,
            text=True,
        )
        for seed in range(4)
    ]
    results = [json.loads(w.communicate(timeout=240)[0]) for w in workers]
    final = open_store(store_url, Path(".")).spent()
    assert final <= budget + 1e-12
    assert any(refused for _, _, refused in results)  # the budget did run out


def test_every_429_is_seen_and_retried_by_the_governor_one_attempt_at_a_time(
    tmp_path: Path,
) -> None:
    """No rate limit set, a server that allows 4/s: each 429 is seen as it arrives (and
    shared through the store: see test_a_429_seen_by_one_process_slows_every_sharer), then
    retried under the backend's own retry policy, each attempt admitted on its own."""
    pytest.importorskip("openai")
    sys.path.insert(0, str(REPO / "benchmarks"))
    from latency_server import LatencyServer

    from hydragent.limits.model import Limited
    from hydragent.models.openai import OpenAIServerModel
    from hydragent.runner.request_path import route

    url = f"sqlite:///{tmp_path / 'limits.sqlite'}"
    with LatencyServer(latency_ms=5, steps=1, max_rps=4) as server:
        models, governors = [], []
        for _ in range(2):  # two "processes": their own governor, one store
            backend = OpenAIServerModel(
                model_id="gpt-4o-mini",
                api_base=server.base_url,
                api_key="test",
                retry={"attempts": 6, "initial_wait": 0.1},
            )
            governor = Governor(open_store(url, tmp_path), "k", max_concurrency=16)
            models.append(route(backend, [Limited(backend, governor)]))
            governors.append(governor)
        assert all(m.retry is None for m in models)  # the governor retries instead
        replies: list[str] = []

        def ask(model: OpenAIServerModel) -> None:
            replies.append(model.generate([{"role": "user", "content": "2+3?"}]).content)

        threads = [threading.Thread(target=ask, args=(models[i % 2],)) for i in range(16)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=120)
        stats = server.stats()
    assert replies == ["5"] * 16
    seen = sum(g.stats["rate_limited"] for g in governors)
    assert seen == stats["rate_limited"] > 0  # every 429 the server sent was seen
    assert governors[0].stats["requests"] + governors[1].stats["requests"] == (
        16 + seen
    )  # each attempt took its own admission


def test_a_store_that_cannot_serve_is_a_config_error_naming_limits_store(tmp_path: Path) -> None:
    import socket

    with socket.socket() as probe:  # a loopback port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    found = problems(
        ["model=scripted", "limits.max_concurrency=2", f"limits.store=redis://127.0.0.1:{port}/0"]
    )
    assert any(p.startswith("limits.store=") and "no Redis answers" in p for p in found), found
    (tmp_path / "notes.txt").write_text("not a database")
    for path, why in ((tmp_path, "is a folder"), (tmp_path / "notes.txt", "not a SQLite file")):
        found = problems(
            ["model=scripted", "limits.max_concurrency=2", f"limits.store=sqlite:///{path}"]
        )
        assert any(p.startswith("limits.store=") and why in p for p in found), found


def test_a_sqlite_store_whose_folder_is_missing_or_a_file_is_a_config_error(
    tmp_path: Path,
) -> None:
    """The parent of the SQLite file must be an existing folder: the error names
    limits.store, the problem, and how relative and absolute paths are spelled."""
    (tmp_path / "afile").write_text("")
    for parent, why in ((tmp_path / "afile", "is a file"), (tmp_path / "nope", "does not exist")):
        found = problems(
            [
                "model=scripted",
                "limits.max_concurrency=2",
                f"limits.store=sqlite:///{parent / 'x.sqlite'}",
            ]
        )
        assert len(found) == 1, found
        assert found[0].startswith("limits.store=") and why in found[0], found
        assert "sqlite:////abs/x.sqlite" in found[0] and "relative" in found[0]
    assert not (tmp_path / "nope").exists()  # nothing is created


def test_tokens_per_minute_weighs_each_call_and_a_larger_reply_pays_back_the_excess(
    store_url: str, tmp_path: Path
) -> None:
    """60,000 tokens a minute is 1,000 a second in a bucket of one minute's worth: a full
    minute's worth passes at once, then each call waits for its own tokens, and a reply that
    used more than its estimate waits for the difference after the call."""
    governor = Governor(open_store(store_url, tmp_path), "k", tokens_per_minute=60_000)
    began = time.monotonic()
    with governor.acquire(Estimate(0, 50_000, 10_000)) as lease:
        lease.settle({"input_tokens": 50_000, "output_tokens": 10_000})
    assert time.monotonic() - began < 0.5  # the full bucket
    began = time.monotonic()
    with governor.acquire(Estimate(0, 1_000, 0)) as lease:
        waited = time.monotonic() - began
        lease.settle({"input_tokens": 2_500, "output_tokens": 0})  # 1,500 more than estimated
    repaid = time.monotonic() - began - waited
    assert 0.8 < waited < 2.0
    assert 1.2 < repaid < 2.5
    # the report's waiting time counts both: before the call, and paying the excess back
    assert governor.report()["waited_s"] >= waited + repaid - 0.2


@settings(
    max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    limit=st.integers(1, 5_000),
    prompt=st.integers(0, 5_000),
    cap=st.one_of(st.none(), st.integers(1, 5_000)),
)
def test_a_call_larger_than_a_minutes_tokens_is_refused_at_once_and_any_other_starts(
    tmp_path: Path, limit: int, prompt: int, cap: int | None
) -> None:
    """Against a full bucket, a call either starts at once or, when its own estimate is more
    than `limits.tokens_per_minute` admits in a minute, is refused at once with an error
    naming that key; it never waits for a bucket that could never hold it."""
    store = open_store(f"sqlite:///{tmp_path / 'tokens.sqlite'}", tmp_path)
    governor = Governor(store, uuid.uuid4().hex, tokens_per_minute=limit)  # a full bucket
    call = Estimate(prompt, prompt, cap)
    began = time.monotonic()
    try:
        if call.tokens > limit:
            named = rf"limits\.tokens_per_minute={limit}\b"
            with pytest.raises(CallTooLarge, match=named), governor.acquire(call):
                pass
            assert governor.report()["requests"] == 0
        else:
            with governor.acquire(call):
                pass
            assert governor.report()["requests"] == 1
    finally:
        governor.close()
    assert time.monotonic() - began < 1.0


class Refused(Exception):
    """A client error carrying an HTTP status, as the SDKs raise them."""

    def __init__(self, status: int) -> None:
        super().__init__(f"HTTP {status}")
        self.status_code = status


@pytest.mark.parametrize(
    ("failure", "billed"),
    [(Refused(400), False), (Refused(429), False), (TimeoutError("read timed out"), True)],
)
def test_what_a_failed_call_costs_the_budget(tmp_path: Path, failure: Exception, billed: bool):
    """A request the provider refused (4xx) costs nothing; a call that failed after it was
    sent (a timeout) may have been billed, so its worst case is kept."""
    from hydragent.limits.model import Limited
    from hydragent.models.scripted import ScriptedModel
    from hydragent.runner.request_path import route

    class Failing(ScriptedModel):
        def request(self, req):  # type: ignore[no-untyped-def]
            raise failure

    store = open_store(f"sqlite:///{tmp_path / 'l.sqlite'}", tmp_path)
    failing = Failing(responses=["x"])
    model = route(failing, [Limited(failing, Governor(store, "k", budget_usd=1.0, price=dollars))])
    with pytest.raises(type(failure)):
        model.generate([{"role": "user", "content": "2+3?"}], max_tokens=10)
    spent = store.spent()
    assert (spent > 0) == billed
    if billed:  # the worst case: the prompt's bytes bound and the 10-token cap
        assert spent >= dollars({"input_tokens": 10, "output_tokens": 10})
