-- Purges tombstones that arrived before the cutoff (their score in the tombstone index: when they
-- arrived here, docs/PROTOCOL.md §6): deletes each record that is still a tombstone, removes it
-- from its Merkle bucket, marks the key dirty (with its tuple, unless already dirty) and drops it
-- from the index. A key that is no longer a tombstone (overwritten by a put) is only dropped from
-- the index; a tombstone indexed since at or after the cutoff (rewritten) is left alone. First the
-- purge horizon is raised to the cutoff, so that nothing is purged before the horizon says so.
--
-- KEYS: 1 tombstones, 2 merkle:dirty, 3 gc:horizon, then per key i: item, bucket
-- ARGV: 1 cutoff (ms, exclusive), then per key i: key, bucket id
-- Returns: the number of records purged.

local t = redis.call('TYPE', KEYS[3])['ok']
if t ~= 'none' and t ~= 'string' then
  return redis.error_reply('WRONGTYPE ' .. KEYS[3] .. ' holds a ' .. t .. ', expected a string')
end
local cutoff = tonumber(ARGV[1])
if cutoff > (tonumber(redis.call('GET', KEYS[3]) or '0') or 0) then
  redis.call('SET', KEYS[3], ARGV[1])
end
local purged = 0
for i = 1, (#ARGV - 1) / 2 do
  local key, bucket = ARGV[2 * i], ARGV[2 * i + 1]
  local tuple = redis.call('HGET', KEYS[3 + 2 * i], key)
  local deleted
  if tuple then deleted = string.match(tuple, '^%d+|%d+|([01])|') end
  local score = tonumber(redis.call('ZSCORE', KEYS[1], key))
  if deleted == '1' and score and score < cutoff then
    redis.call('DEL', KEYS[2 + 2 * i])
    redis.call('HDEL', KEYS[3 + 2 * i], key)
    redis.call('HSETNX', KEYS[2], key, bucket .. tuple)
    redis.call('ZREM', KEYS[1], key)
    purged = purged + 1
  elseif deleted ~= '1' then
    redis.call('ZREM', KEYS[1], key)
  end
end
return purged
