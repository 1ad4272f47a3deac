-- A local write (put or delete) in one atomic call: hybrid clock from the previous version, record,
-- Merkle bucket entry, dirty mark (the key with the tuple the tree last counted for it, kept if
-- the key is already dirty), tombstone index and CDC entry. Every key's type is checked before
-- the first write (the item is a string that SET replaces whatever it held), so an error leaves
-- nothing half-written. With the change feed on, the change is also appended to the feed stream
-- in the same call, so the feed holds every write in the order this store applied them
-- (docs/PROTOCOL.md §10). The previous version is read from the bucket entry (`ts|v|d|h|o`), which
-- every write keeps equal to the item's header.
--
-- KEYS: 1 item, 2 bucket, 3 merkle:dirty, 4 tombstones, 5 cdc, 6 changes (the change feed),
--       7 changes:seq (its counter)
-- ARGV: 1 key, 2 bucket id, 3 now (ms), 4 origin, 5 origin as a JSON string, 6 deleted '0'|'1',
--       7 '1' when the CDC data is a zstd frame of the content, else '0', 8 content hash,
--       9 content type, 10 traceparent ('' = none), 11 traceparent as a JSON string ('' = none),
--       12 CDC data (also the item's body), 13 CDC MAXLEN, 14 max clock skew (ms), 15 largest
--       updatedAt, 16 largest version (docs/PROTOCOL.md §1), 17 ('' = none; deletes only) the
--       version `ts|v` of a record to supersede: the tombstone then takes clock ts and version
--       v + 1, and only if the key has no version here (docs/PROTOCOL.md §6), 18 the change
--       feed's MAXLEN ('0': the feed is off), 19 the feed entry's source (`local`,
--       `supersede:<peer>`: docs/PROTOCOL.md §10), 20 (puts only; '' = none) when the record
--       expires (ms): it goes into the tuple (`h+e`), the header (`"e"`), the CDC meta
--       (`expires_at`) and the tombstone index (score max(e, now): an expired record is collected
--       as a tombstone is, docs/PROTOCOL.md §6)
-- Returns: { updatedAt, version, stream id }, or the error CLOCK_SKEW (the previous record is dated
-- more than the max skew ahead of now) or CLOCK_OVERFLOW (the next clock or version would pass its
-- bound), having written nothing; a superseding delete of a key that has a version returns
-- { '0', '0', '' } and writes nothing.

local function expect_type(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', expected a ' .. want)
  end
  return nil
end

local before = redis.call('HGET', KEYS[2], ARGV[1])
local feed = ARGV[18] ~= '0'
local checks = { { KEYS[3], 'hash' }, { KEYS[4], 'zset' }, { KEYS[5], 'stream' } }
if feed then
  checks[4] = { KEYS[6], 'stream' }
  checks[5] = { KEYS[7], 'string' }
end
for _, check in ipairs(checks) do
  local err = expect_type(check[1], check[2])
  if err then return err end
end

local now = tonumber(ARGV[3])
local ts, v = now, 1
local was_indexed = false -- the previous version is in the tombstone index (a tombstone, or expiring)
if ARGV[17] ~= '' then
  if before or ARGV[6] ~= '1' then return { '0', '0', '' } end
  local sts, sv = string.match(ARGV[17], '^(%d+)|(%d+)$')
  ts, v = tonumber(sts), tonumber(sv) + 1
elseif before then
  local pts, pv, pd = string.match(before, '^(%d+)|(%d+)|([01])|')
  pts, pv = tonumber(pts), tonumber(pv)
  -- Refused rather than written: a year-3000 clock would beat every write made elsewhere, and a
  -- clock or version past its bound is no longer an exact number anywhere.
  if pts > now + tonumber(ARGV[14]) then
    return redis.error_reply('CLOCK_SKEW the stored record of ' .. ARGV[1] .. ' is dated '
      .. string.format('%.0f', pts - now) .. ' ms ahead of this node\'s clock, more than the '
      .. ARGV[14] .. ' ms store.max_clock_skew allows')
  end
  if pts + 1 > tonumber(ARGV[15]) or pv + 1 > tonumber(ARGV[16]) then
    return redis.error_reply('CLOCK_OVERFLOW the next clock or version of ' .. ARGV[1]
      .. ' would pass its bound (updatedAt ' .. ARGV[15] .. ', version ' .. ARGV[16] .. ')')
  end
  ts = math.max(now, pts + 1)
  v = pv + 1
  was_indexed = pd == '1' or string.find(before, '^%d+|%d+|0|%x*%+') ~= nil
end
local tss = string.format('%.0f', ts)
local vs = string.format('%.0f', v)
local key, deleted, hash, origin = ARGV[1], ARGV[6], ARGV[8], ARGV[4]
local expires = ARGV[20]
if deleted == '1' then expires = '' end
-- @include expiry_fields
local hash_field, meta_expiry, header_expiry = expiry_fields(hash, expires)

-- The CDC and feed entries first: the only writes whose failure is not ruled out above (e.g. a bad
-- MAXLEN). The feed entry is the change's version tuple (docs/PROTOCOL.md §4) and its source.
local tuple = tss .. '|' .. vs .. '|' .. deleted .. '|' .. hash_field .. '|' .. origin
local id
if deleted == '1' then
  local meta = '{"version":' .. vs .. ',"updated_at":' .. tss .. ',"origin":' .. ARGV[5] .. '}'
  id = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[13], '*', 'op', 'DEL', 'key', key, 'meta', meta)
else
  local tp = ''
  if ARGV[11] ~= '' then tp = ',"trace_parent":' .. ARGV[11] end
  local meta = '{"content_type":"' .. ARGV[9] .. '","version":' .. vs .. ',"updated_at":' .. tss
    .. tp .. ',"origin":' .. ARGV[5] .. meta_expiry .. '}'
  id = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[13], '*',
    'op', 'PUT', 'key', key, 'hash', hash, 'data', ARGV[12], 'meta', meta)
end
-- @include feed_append
if feed then feed_append(KEYS[6], KEYS[7], ARGV[18], ARGV[3], ARGV[19], { key, tuple }, 2) end

-- The record: its header line (docs/PROTOCOL.md §2), then the CDC data: the content, or its zstd
-- frame (flagged "z"), stored as it is sent.
local tp = ''
if ARGV[11] ~= '' then tp = ',"tp":' .. ARGV[11] end
local z = ''
if ARGV[7] == '1' then z = ',"z":1' end
redis.call('SET', KEYS[1], '{"ts":' .. tss .. ',"v":' .. vs .. ',"d":' .. deleted .. ',"h":"' .. hash
  .. '","o":' .. ARGV[5] .. ',"t":"' .. ARGV[9] .. '"' .. header_expiry .. z .. tp .. '}\n')
if deleted ~= '1' and ARGV[12] ~= '' then redis.call('APPEND', KEYS[1], ARGV[12]) end
redis.call('HSET', KEYS[2], key, tuple)
redis.call('HSETNX', KEYS[3], key, ARGV[2] .. (before or ''))
if deleted == '1' then
  -- Indexed by when it was written here (a superseding delete carries an older clock).
  redis.call('ZADD', KEYS[4], string.format('%.0f', math.max(ts, now)), key)
elseif expires ~= '' then
  -- Collected like a tombstone once expired (docs/PROTOCOL.md §6): never before its expiry.
  redis.call('ZADD', KEYS[4], string.format('%.0f', math.max(tonumber(expires), now)), key)
elseif was_indexed then
  redis.call('ZREM', KEYS[4], key)
end
return { tss, vs, id }
