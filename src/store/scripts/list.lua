-- Lists or counts the keys of a run of Merkle buckets (scan, count: docs/PROTOCOL.md §4). Each
-- bucket is read whole (HGETALL), atomically, and a key is in exactly one bucket (that of the
-- SHA-256 of its key), so a walk over the buckets meets every key present throughout it exactly
-- once, whatever is written meanwhile. The version tuple (`ts|v|d|h|o`, `h+e` when the record
-- expires at e) says whether a key is a tombstone or expired (e <= now).
--
-- KEYS: the bucket keys to read, in walk order
-- ARGV: 1 'keys' or 'count', 2 key prefix to match ('' = every key; compared as bytes), 3 '1' to
--       include tombstones and expired records, 4 (keys only) stop after the bucket in which this
--       many keys were found ('0' for count), 5 now (ms): a record with an expiry at or before it is
--       expired
-- Returns for 'keys': { buckets read, key, key, ... } (the buckets read are the first of KEYS; the
-- rest are for the next call); for 'count': { buckets read (all), matching keys }.

local mode, prefix, deleted_too = ARGV[1], ARGV[2], ARGV[3] == '1'
local limit = tonumber(ARGV[4] or '0') or 0
local now = tonumber(ARGV[5] or '0') or 0
local plen = #prefix
local sub, find, match = string.sub, string.find, string.match
local out = { 0 }
local count = 0
for b = 1, #KEYS do
  if mode == 'count' and plen == 0 and deleted_too then
    count = count + redis.call('HLEN', KEYS[b])
  else
    local flat = redis.call('HGETALL', KEYS[b])
    for i = 1, #flat, 2 do
      local key = flat[i]
      if plen == 0 or sub(key, 1, plen) == prefix then
        local tuple = flat[i + 1]
        local keep = deleted_too
        if not keep and not find(tuple, '^%d+|%d+|1|') then
          local e = match(tuple, '^%d+|%d+|0|%x*%+(%d+)|')
          keep = not e or tonumber(e) > now
        end
        if keep then
          count = count + 1
          if mode == 'keys' then out[#out + 1] = key end
        end
      end
    end
  end
  out[1] = b
  if mode == 'keys' and limit > 0 and count >= limit then break end
end
if mode == 'count' then return { #KEYS, count } end
return out
