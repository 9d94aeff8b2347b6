"""The `limits` store in Redis, for processes on many machines (Ray, SLURM).

The same operations as the SQLite store, each one Lua script: Redis runs a script alone,
so a reserve or a lease is as atomic as a `BEGIN IMMEDIATE` transaction. Every expiry is
measured on the Redis server's clock (`TIME`), so machines whose clocks drift still agree.
Keys live under `hydragent:limits:`, so one Redis can serve other programs too.
"""

from __future__ import annotations

import uuid
from typing import Any

PREFIX = "hydragent:limits:"

_NOW = "local t = redis.call('TIME'); local now = tonumber(t[1]) + tonumber(t[2]) / 1e6\n"

# KEYS: spent, reservations (hash id -> amount), expiries (zset id -> expiry)
_RESERVE = (
    _NOW
    + """
local amount, budget, ttl = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local expired = redis.call('ZRANGEBYSCORE', KEYS[3], '-inf', now)
for _, id in ipairs(expired) do
  local held = tonumber(redis.call('HGET', KEYS[2], id) or '0')
  redis.call('INCRBYFLOAT', KEYS[1], held)
  redis.call('HDEL', KEYS[2], id)
  redis.call('ZREM', KEYS[3], id)
end
local spent = tonumber(redis.call('GET', KEYS[1]) or '0')
local reserved = 0
for _, v in ipairs(redis.call('HVALS', KEYS[2])) do reserved = reserved + tonumber(v) end
if spent + reserved + amount > budget then return {0, tostring(reserved)} end
redis.call('HSET', KEYS[2], ARGV[4], ARGV[1])
redis.call('ZADD', KEYS[3], now + ttl, ARGV[4])
return {1, '0'}
"""
)
_SETTLE = """
local actual = tonumber(ARGV[2])
if redis.call('HDEL', KEYS[2], ARGV[1]) == 0 then
  actual = math.max(0, actual - tonumber(ARGV[3]))  -- expired: counted in full already
end
redis.call('ZREM', KEYS[3], ARGV[1])
redis.call('INCRBYFLOAT', KEYS[1], tostring(actual))
return 1
"""
# KEYS: leases (zset lease -> expiry), gate (hash pause_until, cap)
_TAKE = (
    _NOW
    + """
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
local held = redis.call('ZCARD', KEYS[1])
local limit = tonumber(ARGV[1])
local cap = tonumber(redis.call('HGET', KEYS[2], 'cap') or '0')
if cap > 0 and (limit <= 0 or math.floor(cap) < limit) then limit = math.floor(cap) end
if limit > 0 and held >= limit then return 0 end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), ARGV[3])
return 1
"""
)
_RELEASE = """
redis.call('ZREM', KEYS[1], ARGV[1])
local cap = tonumber(redis.call('HGET', KEYS[2], 'cap') or '0')
if cap > 0 and ARGV[3] == '1' then
  cap = cap + 1 / math.max(cap, 1)
  if cap >= tonumber(ARGV[2]) then redis.call('HDEL', KEYS[2], 'cap')
  else redis.call('HSET', KEYS[2], 'cap', tostring(cap)) end
end
return 1
"""
_SLOW = (
    _NOW
    + """
local held = redis.call('ZCOUNT', KEYS[1], now, '+inf')
if held < 1 then held = 1 end
local current = tonumber(redis.call('HGET', KEYS[2], 'cap') or '0')
if current <= 0 then current = held end
local cap = math.max(1, math.min(current, held) / 2)
local before = tonumber(redis.call('HGET', KEYS[2], 'pause_until') or '0')
local until_ = math.max(now + tonumber(ARGV[1]), before)
redis.call('HSET', KEYS[2], 'cap', tostring(cap), 'pause_until', tostring(until_))
return 1
"""
)
_PAUSE_LEFT = (
    _NOW
    + """
local until_ = tonumber(redis.call('HGET', KEYS[1], 'pause_until') or '0')
return tostring(math.max(0, until_ - now))
"""
)


class RedisStore:
    """Budget ledger, concurrency leases, shared slow-downs and the rate limiter's
    state in one Redis database."""

    def __init__(self, url: str) -> None:
        import redis

        self.url = url
        self.redis = redis.Redis.from_url(url, socket_timeout=30, health_check_interval=30)
        self.redis.ping()  # fail now, with the URL, not at the first call
        self._scripts = {
            name: self.redis.register_script(source)
            for name, source in {
                "reserve": _RESERVE,
                "settle": _SETTLE,
                "take": _TAKE,
                "release": _RELEASE,
                "slow": _SLOW,
                "pause_left": _PAUSE_LEFT,
            }.items()
        }

    def _run(self, name: str, keys: list[str], args: list[Any]) -> Any:
        return self._scripts[name](keys=[PREFIX + k for k in keys], args=args)

    _LEDGER = ["spent", "reservations", "reservation_expiry"]

    def reserve(self, amount: float, budget: float, ttl_s: float) -> tuple[str | None, float]:
        rid = uuid.uuid4().hex
        ok, reserved = self._run("reserve", self._LEDGER, [repr(amount), repr(budget), ttl_s, rid])
        return (rid if int(ok) else None), float(reserved)

    def settle(self, rid: str, reserved: float, actual: float) -> None:
        self._run("settle", self._LEDGER, [rid, repr(actual), repr(reserved)])

    def spent(self) -> float:
        return float(self.redis.get(PREFIX + "spent") or 0.0)

    def take_slot(self, key: str, limit: int | None, ttl_s: float) -> str | None:
        lease = uuid.uuid4().hex
        taken = self._run("take", [f"leases:{key}", f"gate:{key}"], [limit or 0, ttl_s, lease])
        return lease if int(taken) else None

    def release_slot(self, lease: str, key: str, ceiling: int | None, grow: bool) -> None:
        self._run("release", [f"leases:{key}", f"gate:{key}"], [lease, ceiling or 1024, int(grow)])

    def slow_down(self, key: str, seconds: float) -> None:
        self._run("slow", [f"leases:{key}", f"gate:{key}"], [seconds])

    def pause_left(self, key: str) -> float:
        return float(self._run("pause_left", [f"gate:{key}"], []))

    def rate_store(self, key: str) -> Any:
        from pyrate_limiter import RedisStateStore

        return RedisStateStore(self.redis, PREFIX + f"rate:{key}")

    def close(self) -> None:
        self.redis.close()
