-- Local writes of N keys (putMany, deleteMany) in one call: for each key exactly what write.lua does
-- for one (hybrid clock from the previous version, record, Merkle bucket entry, dirty mark,
-- tombstone index, CDC entry; the same CDC fields and meta, byte for byte, and the same record
-- header), in input order. The shared keys' types are checked and every previous version is read
-- (which checks each bucket's type) before the first write, so an error leaves nothing written. A
-- key whose clock write.lua would refuse (CLOCK_SKEW, CLOCK_OVERFLOW) is refused alone, having
-- written nothing of it; the others are written. A key present several times is written in order,
-- each time on the version the call wrote before. Superseding deletes (write.lua's ARGV[17]) are
-- not taken here. With the change feed on, every key written is appended to the feed (in the
-- order written, after the last one: docs/PROTOCOL.md §10), as write.lua appends its one.
--
-- KEYS: 1 merkle:dirty, 2 tombstones, 3 cdc, 4 changes (the change feed), 5 changes:seq (its
--       counter), then per entry i: item, bucket
-- ARGV: 1 now (ms), 2 origin, 3 origin as a JSON string, 4 CDC MAXLEN, 5 max clock skew (ms),
--       6 largest updatedAt, 7 largest version (docs/PROTOCOL.md §1), 8 the byte length of the
--       item keys' prefix, 9 that of the bucket keys' prefix, 10 the feed's MAXLEN ('0': the feed
--       is off), 11 the feed entries' source, then 7 per entry: deleted '0'|'1',
--       '1' when the CDC data is a zstd frame of the content else '0', content hash, content type,
--       traceparent as a JSON string ('' = none), expiry in ms ('' = none; as write.lua's ARGV[20]),
--       CDC data (also the item's body)
-- (An entry's key and bucket id are the ends of its item and bucket key names, as in apply.lua.)
-- Returns 3 elements per entry: { updatedAt, version, stream id } when written, or
-- { '', 'CLOCK_SKEW' | 'CLOCK_OVERFLOW', message } when refused.

local call, sub, format = redis.call, string.sub, string.format
local n = (#KEYS - 5) / 2
if n < 1 or n % 1 ~= 0 or #ARGV ~= 11 + 7 * n then
  return redis.error_reply('ERR write_many: ' .. #KEYS .. ' keys but ' .. #ARGV .. ' arguments')
end

local function expect_type(key, want)
  local t = call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', expected a ' .. want)
  end
  return nil
end
local feed = ARGV[10] ~= '0'
local checks = { { KEYS[1], 'hash' }, { KEYS[2], 'zset' }, { KEYS[3], 'stream' } }
if feed then
  checks[4] = { KEYS[4], 'stream' }
  checks[5] = { KEYS[5], 'string' }
end
for _, check in ipairs(checks) do
  local err = expect_type(check[1], check[2])
  if err then return err end
end

local item_prefix, bucket_prefix = tonumber(ARGV[8]), tonumber(ARGV[9])
local names, buckets = {}, {}
-- current[key]: the version tuple the key has now (false: none), kept up to date as the call writes.
local current = {}
for i = 1, n do
  local name = sub(KEYS[4 + 2 * i], item_prefix + 1)
  local bucket = sub(KEYS[5 + 2 * i], bucket_prefix + 1)
  names[i], buckets[i] = name, bucket
  if current[name] == nil then current[name] = call('HGET', KEYS[5 + 2 * i], name) end
end

-- Which keys are already dirty (their mark, from an earlier write, stays), read in one HMGET per
-- 1,000 keys: the new marks then go in one HSET at the end, as apply.lua writes them.
local dirty = {}
for first = 1, n, 1000 do
  local found = call('HMGET', KEYS[1], unpack(names, first, math.min(n, first + 999)))
  for j = 1, #found do
    if found[j] then dirty[names[first + j - 1]] = true end
  end
end

local now, now_text = tonumber(ARGV[1]), ARGV[1]
local origin, origin_json, maxlen = ARGV[2], ARGV[3], ARGV[4]
local skew, max_ts, max_v = tonumber(ARGV[5]), tonumber(ARGV[6]), tonumber(ARGV[7])
local out = {}
local changes, nchanges = {}, 0
-- The records go in one MSET at the end, the new dirty marks in one HSET (a redis.call costs about
-- as much as the SET it runs); a key written twice is listed twice, its later value last.
local items, nitems = {}, 0
local marks, nmarks = {}, 0
-- @include expiry_fields
for i = 1, n do
  local key, item, bucket_key = names[i], KEYS[4 + 2 * i], KEYS[5 + 2 * i]
  local a = 11 + 7 * (i - 1)
  local deleted, compressed, hash, ctype, tp_json, expires, data =
    ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4], ARGV[a + 5], ARGV[a + 6], ARGV[a + 7]
  if deleted == '1' then expires = '' end
  local before = current[key]
  local ts, v = now, 1
  local was_indexed = false
  local refused
  if before then
    local pts, pv, pd = string.match(before, '^(%d+)|(%d+)|([01])|')
    pts, pv = tonumber(pts), tonumber(pv)
    if pts > now + skew then
      refused = { '', 'CLOCK_SKEW', 'the stored record of ' .. key .. ' is dated '
        .. format('%.0f', pts - now) .. ' ms ahead of this node\'s clock, more than the '
        .. ARGV[5] .. ' ms store.max_clock_skew allows' }
    elseif pts + 1 > max_ts or pv + 1 > max_v then
      refused = { '', 'CLOCK_OVERFLOW', 'the next clock or version of ' .. key
        .. ' would pass its bound (updatedAt ' .. ARGV[6] .. ', version ' .. ARGV[7] .. ')' }
    else
      ts = math.max(now, pts + 1)
      v = pv + 1
      was_indexed = pd == '1' or string.find(before, '^%d+|%d+|0|%x*%+') ~= nil
    end
  end
  if refused then
    out[#out + 1], out[#out + 2], out[#out + 3] = refused[1], refused[2], refused[3]
  else
    -- A new key's clock is the call's now and its version 1: no format (sprintf) for them.
    local tss = ts == now and now_text or format('%.0f', ts)
    local vs = v == 1 and '1' or format('%.0f', v)
    local hash_field, meta_expiry, header_expiry = expiry_fields(hash, expires)
    local id
    if deleted == '1' then
      local meta = '{"version":' .. vs .. ',"updated_at":' .. tss .. ',"origin":' .. origin_json .. '}'
      id = call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*', 'op', 'DEL', 'key', key, 'meta', meta)
    else
      local tp = ''
      if tp_json ~= '' then tp = ',"trace_parent":' .. tp_json end
      local meta = '{"content_type":"' .. ctype .. '","version":' .. vs .. ',"updated_at":' .. tss
        .. tp .. ',"origin":' .. origin_json .. meta_expiry .. '}'
      id = call('XADD', KEYS[3], 'MAXLEN', '~', maxlen, '*',
        'op', 'PUT', 'key', key, 'hash', hash, 'data', data, 'meta', meta)
    end
    local htp = ''
    if tp_json ~= '' then htp = ',"tp":' .. tp_json end
    local z = ''
    if compressed == '1' then z = ',"z":1' end
    local header = '{"ts":' .. tss .. ',"v":' .. vs .. ',"d":' .. deleted .. ',"h":"' .. hash
      .. '","o":' .. origin_json .. ',"t":"' .. ctype .. '"' .. header_expiry .. z .. htp .. '}\n'
    items[nitems + 1] = item
    if deleted ~= '1' and data ~= '' then items[nitems + 2] = header .. data
    else items[nitems + 2] = header end
    nitems = nitems + 2
    local tuple = tss .. '|' .. vs .. '|' .. deleted .. '|' .. hash_field .. '|' .. origin
    call('HSET', bucket_key, key, tuple)
    if not dirty[key] then
      dirty[key] = true
      marks[nmarks + 1], marks[nmarks + 2] = key, buckets[i] .. (before or '')
      nmarks = nmarks + 2
    end
    if deleted == '1' then
      call('ZADD', KEYS[2], format('%.0f', math.max(ts, now)), key)
    elseif expires ~= '' then
      call('ZADD', KEYS[2], format('%.0f', math.max(tonumber(expires), now)), key)
    elseif was_indexed then
      call('ZREM', KEYS[2], key)
    end
    current[key] = tuple
    changes[nchanges + 1], changes[nchanges + 2] = key, tuple
    nchanges = nchanges + 2
    out[#out + 1], out[#out + 2], out[#out + 3] = tss, vs, id
  end
end
for first = 1, nitems, 2000 do
  call('MSET', unpack(items, first, math.min(nitems, first + 1999)))
end
for first = 1, nmarks, 2000 do
  call('HSET', KEYS[1], unpack(marks, first, math.min(nmarks, first + 1999)))
end
-- @include feed_append
if feed then feed_append(KEYS[4], KEYS[5], ARGV[10], ARGV[1], ARGV[11], changes, nchanges) end
return out
