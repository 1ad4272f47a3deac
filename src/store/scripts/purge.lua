-- Purges expired tombstones: deletes each record that is still a tombstone older than the cutoff,
-- removes it from its Merkle bucket, marks the key dirty (with its tuple, unless already dirty)
-- and drops it from the tombstone index. A record's version is read from its bucket entry
-- (`ts|v|d|h|o`), which every write keeps equal to the item's header.
-- A key that is no longer a tombstone (overwritten by a put) is only dropped from the index; a
-- tombstone rewritten since (newer clock) gets its score corrected.
--
-- KEYS: 1 tombstones, 2 merkle:dirty, then per key i: item, bucket
-- ARGV: 1 cutoff (ms, exclusive), then per key i: key, bucket id
-- Returns: the number of records purged.

local cutoff = tonumber(ARGV[1])
local purged = 0
for i = 1, (#ARGV - 1) / 2 do
  local key, bucket = ARGV[2 * i], ARGV[2 * i + 1]
  local tuple = redis.call('HGET', KEYS[2 + 2 * i], key)
  local ts, deleted
  if tuple then ts, deleted = string.match(tuple, '^(%d+)|%d+|([01])|') end
  if deleted == '1' and tonumber(ts) < cutoff then
    redis.call('DEL', KEYS[1 + 2 * i])
    redis.call('HDEL', KEYS[2 + 2 * i], key)
    redis.call('HSETNX', KEYS[2], key, bucket .. tuple)
    redis.call('ZREM', KEYS[1], key)
    purged = purged + 1
  elseif deleted == '1' then
    redis.call('ZADD', KEYS[1], ts, key)
  else
    redis.call('ZREM', KEYS[1], key)
  end
end
return purged
