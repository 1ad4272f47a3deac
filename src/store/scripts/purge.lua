-- Purges tombstones that arrived before the cutoff (their score in the tombstone index: when they
-- arrived here, docs/PROTOCOL.md §6), and expired records indexed before it (score max(expiry,
-- arrival)), which are collected exactly as tombstones are: deletes each record that is still a
-- tombstone (or still that expired record), removes it
-- from its Merkle bucket, marks the key dirty (with its tuple, unless already dirty) and drops it
-- from the index. A key that is no longer a tombstone (overwritten by a put) is only dropped from
-- the index; a tombstone indexed since at or after the cutoff (rewritten) is left alone. First the
-- purge horizon is raised to the cutoff, so that nothing is purged before the horizon says so.
-- With the change feed on, each purge is appended to it (source `purge`, docs/PROTOCOL.md §10).
--
-- KEYS: 1 tombstones, 2 merkle:dirty, 3 gc:horizon, 4 changes (the change feed), 5 changes:seq
--       (its counter), then per key i: item, bucket
-- ARGV: 1 cutoff (ms, exclusive), 2 the change feed's MAXLEN ('0': off), 3 now (ms), then per
--       key i: key, bucket id
-- Returns: the number of records purged.

local feed = ARGV[2] ~= '0'
local checks = { { KEYS[3], 'string' } }
if feed then
  checks[2] = { KEYS[4], 'stream' }
  checks[3] = { KEYS[5], 'string' }
end
for _, check in ipairs(checks) do
  local t = redis.call('TYPE', check[1])['ok']
  if t ~= 'none' and t ~= check[2] then
    return redis.error_reply('WRONGTYPE ' .. check[1] .. ' holds a ' .. t .. ', expected a '
      .. check[2])
  end
end
local cutoff = tonumber(ARGV[1])
if cutoff > (tonumber(redis.call('GET', KEYS[3]) or '0') or 0) then
  redis.call('SET', KEYS[3], ARGV[1])
end
local purged = 0
local changes, nchanges = {}, 0 -- the feed's key, tuple pairs
for i = 1, (#ARGV - 3) / 2 do
  local key, bucket = ARGV[2 * i + 2], ARGV[2 * i + 3]
  local tuple = redis.call('HGET', KEYS[5 + 2 * i], key)
  -- indexed: a tombstone, or a record with an expiry (h+e); collectable: one dead before the cutoff.
  local indexed, collectable = false, false
  if tuple then
    if string.find(tuple, '^%d+|%d+|1|') then
      indexed, collectable = true, true
    else
      local e = string.match(tuple, '^%d+|%d+|0|%x*%+(%d+)|')
      indexed = e ~= nil
      collectable = indexed and tonumber(e) < cutoff
    end
  end
  local score = tonumber(redis.call('ZSCORE', KEYS[1], key))
  if collectable and score and score < cutoff then
    redis.call('DEL', KEYS[4 + 2 * i])
    redis.call('HDEL', KEYS[5 + 2 * i], key)
    redis.call('HSETNX', KEYS[2], key, bucket .. tuple)
    redis.call('ZREM', KEYS[1], key)
    changes[nchanges + 1] = key
    changes[nchanges + 2] = tuple
    nchanges = nchanges + 2
    purged = purged + 1
  elseif not indexed then
    redis.call('ZREM', KEYS[1], key)
  end
end
-- @include feed_append
if feed then feed_append(KEYS[4], KEYS[5], ARGV[2], ARGV[3], 'purge', changes, nchanges) end
return purged
