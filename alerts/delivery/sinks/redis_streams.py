"""Redis Streams sink: one stream entry per idempotency key, even across crashes.

Each message is added by a Lua script (atomic in Redis) that first looks for a marker key
`<stream>:sent:<idempotency key>`; only when it is absent does it XADD the entry and set
the marker (with an expiry) to the new entry id. A dispatcher killed after the XADD but
before recording the delivery sends the message again after restart, and the script
answers with the existing entry instead of adding a duplicate. Consumers read with
consumer groups (XREADGROUP/XACK); the entry's fields are flat strings.
"""

from __future__ import annotations

import logging

import redis

from gridwatch.alerts.delivery.sinks.base import Message, RetryableError, Sink, shorten
from gridwatch.settings.sinks import RedisStreamsSinkSettings, read_secret

log = logging.getLogger(__name__)

# KEYS: stream, marker. ARGV: marker ttl, maxlen (0: none), then field/value pairs.
ADD_ONCE = """
local existing = redis.call('GET', KEYS[2])
if existing then return {existing, 0} end
local args = {'XADD', KEYS[1]}
if tonumber(ARGV[2]) > 0 then
  table.insert(args, 'MAXLEN'); table.insert(args, '~'); table.insert(args, ARGV[2])
end
table.insert(args, '*')
for i = 3, #ARGV do table.insert(args, ARGV[i]) end
local id = redis.call(unpack(args))
redis.call('SET', KEYS[2], id, 'EX', ARGV[1])
return {id, 1}
"""


def marker_key(stream: str, idempotency_key: str) -> str:
    return f"{stream}:sent:{idempotency_key}"


def entry_fields(message: Message) -> dict[str, str]:
    """The stream entry: routing fields a consumer can filter on, and the JSON body."""
    incident = message.incident
    return {
        "idempotency_key": message.key,
        "topic": message.topic,
        "incident_id": message.incident_id,
        "grid_cell": str(incident.get("grid_cell") or ""),
        "kind": str(incident.get("kind") or ""),
        "payload": message.body.decode(),
    }


class RedisStreamsSink(Sink):
    type = "redis_streams"

    def __init__(self, spec: RedisStreamsSinkSettings) -> None:
        super().__init__(spec.name)
        self.spec = spec
        password = read_secret(spec.password_env) if spec.password_env else None
        self._redis = redis.Redis.from_url(
            spec.url, password=password, socket_timeout=spec.timeout_s,
            socket_connect_timeout=spec.timeout_s, decode_responses=True,
        )
        self._add_once = self._redis.register_script(ADD_ONCE)

    @property
    def target(self) -> str:
        host = self._redis.connection_pool.connection_kwargs.get("host", "?")
        port = self._redis.connection_pool.connection_kwargs.get("port", "?")
        return f"redis://{host}:{port}/{self.spec.stream}"

    def send(self, message: Message) -> None:
        argv: list[str | int] = [self.spec.dedupe_ttl_s, self.spec.maxlen or 0]
        for field, value in entry_fields(message).items():
            argv += [field, value]
        keys = [self.spec.stream, marker_key(self.spec.stream, message.key)]
        try:
            entry_id, added = self._add_once(keys=keys, args=argv)
        except redis.RedisError as exc:
            # Nothing Redis answers is about one message (a wrong key type, a read-only
            # replica, a bad password): every error is the server's state, so retry.
            reason = f"{self.target}: {type(exc).__name__}: {shorten(str(exc))}"
            raise RetryableError(reason) from None
        if not added:
            log.info("redis sink %r: %s already in %s as %s", self.name, message.key,
                     self.spec.stream, entry_id)

    def close(self) -> None:
        self._redis.close()
