-- A local write (put or delete) in one atomic call: hybrid clock from the previous version, record,
-- Merkle bucket entry, dirty mark (the key with the tuple the tree last counted for it, kept if
-- the key is already dirty), tombstone index and CDC entry. Every key's type is checked before
-- the first write, so an error leaves nothing half-written.
--
-- KEYS: 1 item, 2 bucket, 3 merkle:dirty, 4 tombstones, 5 cdc
-- ARGV: 1 key, 2 bucket id, 3 now (ms), 4 origin, 5 origin as a JSON string, 6 deleted '0'|'1',
--       7 content, 8 content hash, 9 content type, 10 traceparent ('' = none),
--       11 traceparent as a JSON string ('' = none), 12 CDC data, 13 CDC MAXLEN
-- Returns: { updatedAt, version, stream id }

local function expect_type(key, want)
  local t = redis.call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', expected a ' .. want)
  end
  return nil
end

local prev = redis.call('HMGET', KEYS[1], 'ts', 'v', 'd', 'h', 'o')
for _, check in ipairs({ { KEYS[2], 'hash' }, { KEYS[3], 'hash' }, { KEYS[4], 'zset' }, { KEYS[5], 'stream' } }) do
  local err = expect_type(check[1], check[2])
  if err then return err end
end

local now = tonumber(ARGV[3])
local ts, v = now, 1
if prev[1] then
  ts = math.max(now, tonumber(prev[1]) + 1)
  v = tonumber(prev[2]) + 1
end
local tss = string.format('%.0f', ts)
local vs = string.format('%.0f', v)
local key, deleted, hash, origin = ARGV[1], ARGV[6], ARGV[8], ARGV[4]

-- The CDC entry first: it is the only write whose failure is not ruled out above (e.g. a bad MAXLEN).
local id
if deleted == '1' then
  local meta = '{"version":' .. vs .. ',"updated_at":' .. tss .. ',"origin":' .. ARGV[5] .. '}'
  id = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[13], '*', 'op', 'DEL', 'key', key, 'meta', meta)
else
  local tp = ''
  if ARGV[11] ~= '' then tp = ',"trace_parent":' .. ARGV[11] end
  local meta = '{"content_type":"' .. ARGV[9] .. '","version":' .. vs .. ',"updated_at":' .. tss
    .. tp .. ',"origin":' .. ARGV[5] .. '}'
  id = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[13], '*',
    'op', 'PUT', 'key', key, 'hash', hash, 'data', ARGV[12], 'meta', meta)
end

redis.call('HSET', KEYS[1], 'c', ARGV[7], 'h', hash, 't', ARGV[9], 'ts', tss, 'v', vs, 'o', origin,
  'd', deleted, 'tp', ARGV[10])
redis.call('HSET', KEYS[2], key, tss .. '|' .. vs .. '|' .. deleted .. '|' .. hash .. '|' .. origin)
local before = ''
if prev[1] then before = prev[1] .. '|' .. prev[2] .. '|' .. prev[3] .. '|' .. prev[4] .. '|' .. prev[5] end
redis.call('HSETNX', KEYS[3], key, ARGV[2] .. before)
if deleted == '1' then
  redis.call('ZADD', KEYS[4], ts, key)
elseif prev[3] == '1' then
  redis.call('ZREM', KEYS[4], key)
end
return { tss, vs, id }
