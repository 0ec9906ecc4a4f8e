//! The Lua scripts the Redis bus runs. Each is one atomic step on the Redis
//! server: nothing else runs between its reads, its writes and its publish,
//! which is what keeps a topic's seqs gap-free and in one order on every
//! node (the technique Centrifugo's Redis engine uses).
//!
//! Scripts never raise errors for expected outcomes; they return codes, so
//! that a pipeline of them is answered command by command.

/// A call of `script` on `keys`; its ARGV follow as the command's args.
pub fn eval(script: &str, keys: &[String]) -> redis::Cmd {
    let mut cmd = redis::cmd("EVAL");
    cmd.arg(script).arg(keys.len()).arg(keys);
    cmd
}

/// Numbers a batch of chat messages and publishes it, in one step.
///
/// KEYS: the topic's seq counter, the topic's channel.
/// ARGV: the ceiling (the database's mark: no seq above it may be given
/// out), the payload's header line, the count, then a prefix and a suffix
/// per message (its frame cut where the seq goes).
///
/// Returns `{first, 0}`; `{-1, 0}` when the counter is missing (Redis lost
/// it, or the topic is new to it: the node sets it from the database and
/// asks again); `{-2, last}` when the batch would pass the ceiling (the node
/// raises the mark and asks again).
pub const NUMBER: &str = r"
local cur = redis.call('GET', KEYS[1])
if not cur then return {-1, 0} end
cur = tonumber(cur)
local n = tonumber(ARGV[3])
if cur + n > tonumber(ARGV[1]) then return {-2, cur} end
local parts = {ARGV[2]}
for i = 1, n do
  parts[#parts + 1] = ARGV[2 + 2 * i] .. string.format('%d', cur + i) .. ARGV[3 + 2 * i]
end
redis.call('SET', KEYS[1], cur + n)
redis.call('PUBLISH', KEYS[2], table.concat(parts, '\n'))
return {cur + 1, 0}
";

/// Sets a topic's counter unless another node already did; returns it.
///
/// KEYS: the topic's seq counter. ARGV: the floor (the highest seq the
/// database says may have been given out).
pub const INIT: &str = r"
redis.call('SET', KEYS[1], ARGV[1], 'NX')
return tonumber(redis.call('GET', KEYS[1]))
";

/// Records a presence diff in the topic's member hash and publishes it.
///
/// KEYS: the member hash, the topic's channel, the node's set of topics.
/// ARGV: the node, the topic, the payload, the number of leaves, the
/// leaving connections, then a connection and a name per join. Leaves go
/// first: a renamed connection leaves under its old name and joins under
/// its new one in the same diff.
pub const PRESENCE: &str = r"
local node = ARGV[1]
local leaves = tonumber(ARGV[4])
for i = 5, 4 + leaves do
  redis.call('HDEL', KEYS[1], ARGV[i])
end
local joined = false
for i = 5 + leaves, #ARGV, 2 do
  redis.call('HSET', KEYS[1], ARGV[i], node .. '\t' .. ARGV[i + 1])
  joined = true
end
if joined then redis.call('SADD', KEYS[3], ARGV[2]) end
redis.call('PUBLISH', KEYS[2], ARGV[3])
return 1
";

/// A node's heartbeat: records it alive now (by Redis's clock, so nodes'
/// clocks need not agree) with its description. Returns whether the node
/// was missing from the registry (1: new, or counted dead meanwhile), and
/// the nodes whose last heartbeat is older than the TTL.
///
/// KEYS: the node set, the node's description key. ARGV: the node, its
/// description (JSON), the TTL in milliseconds.
pub const HEARTBEAT: &str = r"
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local added = redis.call('ZADD', KEYS[1], now, ARGV[1])
redis.call('SET', KEYS[2], ARGV[2], 'PX', ARGV[3])
return {added, redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now - tonumber(ARGV[3]))}
";

/// Counts a use of a key in a fixed window that starts at its first use:
/// the count and its expiry are set in one step, so a node that dies
/// between them cannot leave a count that never ends.
///
/// KEYS: the counter. ARGV: the window in milliseconds. Returns the count,
/// this use included, and the milliseconds left in the window.
pub const COUNT: &str = r"
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('PEXPIRE', KEYS[1], ARGV[1]) end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  left = tonumber(ARGV[1])
end
return {n, left}
";

/// Reads what `COUNT` counted, without counting: the count (0 when the
/// window ended) and the milliseconds left in the window.
///
/// KEYS: the counter.
pub const READ_COUNT: &str = r"
local n = redis.call('GET', KEYS[1])
if not n then return {0, 0} end
local left = redis.call('PTTL', KEYS[1])
if left < 0 then left = 0 end
return {tonumber(n), left}
";
