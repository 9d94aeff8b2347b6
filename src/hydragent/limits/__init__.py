"""`limits`: rate, concurrency and dollar limits shared by every process that points at the
same store (DESIGN.md §3, docs/architecture.md "Limits").

- `stores`: where the shared state lives (`auto`, `sqlite:///PATH`, `redis://HOST:PORT/DB`).
- `rate`: requests and tokens per minute, on pyrate-limiter's GCRA.
- `governor`: the lease every model call takes (slow-down, concurrency, budget, rate).
- `model`: the one hook in the request path (`Limited`, a layer that runner/build.py adds).
"""

from __future__ import annotations

from hydragent.limits.governor import BudgetExhausted, CallTooLarge, Estimate, Governor, Lease
from hydragent.limits.stores import STORE_FORMS, open_store, store_problem

__all__ = [
    "STORE_FORMS",
    "BudgetExhausted",
    "CallTooLarge",
    "Estimate",
    "Governor",
    "Lease",
    "open_store",
    "store_problem",
]
