-- Applies replicated records by last-writer-wins, in one atomic call per chunk. The order is the
-- total order of docs/PROTOCOL.md: (updatedAt, version) numerically, then origin, then content hash
-- by byte order, then a tombstone above a put, then the expiry (none above any, later above
-- earlier). Every key's type is checked before the first write
-- (an item is a string that SET replaces whatever it held), so an error writes nothing. A previous
-- version is read from its bucket entry (`ts|v|d|h|o`), which every write keeps equal to the
-- item's header. Every dirty mark is written (one HSET) before the records it covers. With the
-- change feed on, the records applied are appended to the feed in the order they are applied, up
-- to 32 to an entry, before any other write (docs/PROTOCOL.md §10).
--
-- KEYS: 1 merkle:dirty, 2 tombstones, 3 cdc, 4 conflicts, 5 gc:horizon, 6 changes (the change
--       feed), 7 changes:seq (its counter), then per record i: item, bucket
-- ARGV: 1 relay '0'|'1', 2 conflict log '0'|'1', 3 now (ms: a tombstone applied is indexed at
--       max(its updatedAt, now), when it arrived here), 4 CDC MAXLEN, 5 conflicts MAXLEN, 6 when
--       relaying the records' CDC fields as a JSON array of [content type, origin as JSON,
--       traceparent as JSON ('' = none)] per record ('' when not relaying), 7 the byte length of
--       the item keys' prefix, 8 that of the bucket keys' prefix, 9 one flag byte per record ('1'
--       a tombstone, '0' a put, '2' a put that expires: its tuple's hash field is `h+e`), 10 the arena: the records' item values (header line and body,
--       built by the client: docs/PROTOCOL.md §2) back to back, then their version tuples
--       `ts|v|d|h|o` (docs/PROTOCOL.md §4) back to back, 11 where each value and then each tuple
--       ends in the arena (a 32-bit big-endian byte offset each: 2 per record), 12 the clock
--       margin (ms, store.max_clock_skew) below the purge horizon, 13 '1' to apply live records
--       older than the horizon all the same (from a peer in sync since it: docs/PROTOCOL.md §6),
--       14 the change feed's MAXLEN ('0': the feed is off), 15 the feed entries' source
--       (`hot:<peer>`, `repair:<peer>` or `apply`), then when relaying per record its CDC data.
-- A record of a key this node holds no version of, dated before gc:horizon minus the margin, looks
-- exactly like a delete purged here: a tombstone, or a record expired at now, is stale (3), a live
-- record is refused (5). An expiring record applied is indexed in tombstones at max(e, now), as
-- write.lua indexes one (docs/PROTOCOL.md §6).
-- (A record's key and bucket id are the ends of its item and bucket key names, so nothing is sent
-- twice: Redis's Lua hashes every byte of every string it makes, and each argument is made into
-- one. The values and tuples travel as one argument, so the client writes them in one piece, and
-- a value is cut from it only for a record that is applied. The relayed fields travel as one JSON
-- argument, read with the cjson library Redis bundles, not three arguments per record. A tuple is
-- parsed only when it must be read: a new live key, or an identical version, needs none.)
-- Returns per record: its outcome (1 applied, 2 duplicate, 3 stale, 4 conflict, 5 purged) alone when there
-- was no previous version, or the outcome + 10 followed by the previous version's tuple (a backlog
-- of new keys then costs one reply element a record).

local call, sub, byte = redis.call, string.sub, string.byte
local relay = ARGV[1] == '1'
local log_conflicts = ARGV[2] == '1'
local now = ARGV[3]
local n = (#KEYS - 7) / 2
if n < 0 or n % 1 ~= 0 or #ARGV ~= 15 + (relay and n or 0) or #ARGV[9] ~= n
  or #ARGV[11] ~= 8 * n then
  return redis.error_reply('ERR apply: ' .. #KEYS .. ' keys but ' .. #ARGV .. ' arguments')
end
local relayed = relay and cjson.decode(ARGV[6]) or nil
if relay and #relayed ~= n then
  return redis.error_reply('ERR apply: ' .. n .. ' records but ' .. #relayed .. ' relayed fields')
end
local item_prefix = tonumber(ARGV[7])
local bucket_prefix = tonumber(ARGV[8])
local arena = ARGV[10]
local datas = 15 -- ARGV[datas + i] is record i's CDC data
local accept_old = ARGV[13] == '1'
local feed_maxlen, source = ARGV[14], ARGV[15]
local feed = feed_maxlen ~= '0'
-- ends[j]: where piece j (1..n the values, n+1..2n the tuples) ends in the arena (ends[0] = 0),
-- read by struct.unpack in runs of 2,000 (a run's values pass through Lua's stack, which takes
-- 8,000).
local ends = {}
for first = 1, 2 * n, 2000 do
  local count = math.min(2000, 2 * n - first + 1)
  local run = { struct.unpack('>' .. string.rep('I4', count), ARGV[11], 4 * first - 3) }
  if count == 2 * n then ends = run else for j = 1, count do ends[first + j - 1] = run[j] end end
end
ends[0] = 0
if n > 0 and ends[2 * n] ~= #arena then
  return redis.error_reply('ERR apply: the arena\'s pieces end at byte ' .. ends[2 * n] ..
    ' of ' .. #arena)
end
local function piece(j) return sub(arena, ends[j - 1] + 1, ends[j]) end
local tuple_of = {} -- cut here, inline: a call per record costs a duplicate ~1% more instructions
for i = 1, n do tuple_of[i] = sub(arena, ends[n + i - 1] + 1, ends[n + i]) end
local key_of = {}
for i = 1, n do key_of[i] = sub(KEYS[6 + 2 * i], item_prefix + 1) end
local flags = ARGV[9] -- byte i: '1' when record i is a tombstone

local function expect_type(key, want)
  local t = call('TYPE', key)['ok']
  if t ~= 'none' and t ~= want then
    return redis.error_reply('WRONGTYPE ' .. key .. ' holds a ' .. t .. ', expected a ' .. want)
  end
  return nil
end

-- Byte order (Lua's string '<' follows the server's collation locale, which need not be bytes).
local function cmp_bytes(a, b)
  if a == b then return 0 end
  local la, lb = #a, #b
  for i = 1, math.min(la, lb) do
    local x, y = byte(a, i), byte(b, i)
    if x ~= y then return x < y and -1 or 1 end
  end
  return la < lb and -1 or 1
end

-- A version tuple string parsed: { ts (number), v (number), origin, deleted, hash, ts string,
-- expiry (number, or nil: none), expiry string ('' = none) }.
local function parse(tuple)
  local ts, v, d, h, e, o = string.match(tuple, '^(%d+)|(%d+)|([01])|(%x*)%+?(%d*)|(.*)$')
  return { tonumber(ts), tonumber(v), o, d, h, ts, tonumber(e), e }
end

-- Compares parsed version tuples.
local function cmp(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] and -1 or 1 end
  if a[2] ~= b[2] then return a[2] < b[2] and -1 or 1 end
  local c = cmp_bytes(a[3], b[3])
  if c ~= 0 then return c end
  c = cmp_bytes(a[5], b[5])
  if c ~= 0 then return c end
  if a[4] ~= b[4] then return a[4] == '1' and 1 or -1 end
  local ea, eb = a[7] or math.huge, b[7] or math.huge
  if ea == eb then return 0 end
  return ea < eb and -1 or 1
end

local err = expect_type(KEYS[1], 'hash') or expect_type(KEYS[2], 'zset')
  or expect_type(KEYS[5], 'string')
if err then return err end
-- Below this, a key this node lacks was, by all appearances, deleted and purged here (0: never).
local purged_before = tonumber(call('GET', KEYS[5]) or '0') or 0
if purged_before > 0 then purged_before = purged_before - tonumber(ARGV[12]) end
if relay then err = expect_type(KEYS[3], 'stream') if err then return err end end
if log_conflicts then err = expect_type(KEYS[4], 'stream') if err then return err end end
if feed then
  err = expect_type(KEYS[6], 'stream') or expect_type(KEYS[7], 'string')
  if err then return err end
end

-- Pass 1: read every previous version, its tuple string or false (which checks the bucket's type).
local prevs = {}
for i = 1, n do
  prevs[i] = call('HGET', KEYS[7 + 2 * i], key_of[i])
end

-- Which keys are already dirty (their mark, from an earlier write, stays).
local dirty = {}
for first = 1, n, 1000 do
  local names, m = {}, 0
  for i = first, math.min(n, first + 999) do m = m + 1 names[m] = key_of[i] end
  local found = call('HMGET', KEYS[1], unpack(names))
  for j = 1, m do
    if found[j] then dirty[names[j]] = true end
  end
end

-- Pass 2: decide, with no write. `latest` holds the tuple this call will have written, for a key
-- present twice; `marks` the dirty marks to add: the key with the tuple the tree last counted for
-- it (its version before this call). Tuples are canonical (decimal without leading zeros), so two
-- versions are equal exactly when their tuples are.
local latest = {}
local outcomes = {}
local previous = {}
local parsed = {}
local parsed_prev = {}
local marks, nmarks = {}, 0
for i = 1, n do
  local key, tuple = key_of[i], tuple_of[i]
  local prev = latest[key] or prevs[i]
  local outcome
  if not prev then
    outcome = 1
    if purged_before > 0 and tonumber(string.match(tuple, '^%d+')) < purged_before then
      local flag = byte(flags, i)
      if flag == 49 or (flag == 50 and parse(tuple)[7] <= tonumber(now)) then outcome = 3
      elseif not accept_old then outcome = 5 end
    end
  elseif prev == tuple then
    outcome = 2
  else
    local incoming, p = parse(tuple), parse(prev)
    parsed[i], parsed_prev[i] = incoming, p
    local c = cmp(incoming, p)
    if c > 0 then outcome = 1
    elseif c == 0 then outcome = 2 -- equal versions in tuples written some other way
    elseif p[2] > incoming[2] then outcome = 3
    else outcome = 4 end
  end
  outcomes[i] = outcome
  previous[i] = prev
  if outcome == 1 then
    latest[key] = tuple
    if not dirty[key] then
      dirty[key] = true
      marks[nmarks + 1] = key
      marks[nmarks + 2] = sub(KEYS[7 + 2 * i], bucket_prefix + 1) .. (prevs[i] or '')
      nmarks = nmarks + 2
    end
  end
end

-- @include feed_append
if feed then
  local changes, nchanges = {}, 0
  for i = 1, n do
    if outcomes[i] == 1 then
      changes[nchanges + 1] = key_of[i]
      changes[nchanges + 2] = tuple_of[i]
      nchanges = nchanges + 2
    end
  end
  feed_append(KEYS[6], KEYS[7], feed_maxlen, now, source, changes, nchanges)
end
for first = 1, nmarks, 2000 do
  call('HSET', KEYS[1], unpack(marks, first, math.min(nmarks, first + 1999)))
end

-- Pass 3: write. The items go in one MSET per call at the end (a redis.call costs about as much
-- as the SET it runs); a key applied twice in a call is listed twice, the later value last.
local out, nout = {}, 0
local items, nitems = {}, 0
for i = 1, n do
  local key, tuple = key_of[i], tuple_of[i]
  local outcome, prev = outcomes[i], previous[i]

  if outcome == 1 then
    call('HSET', KEYS[7 + 2 * i], key, tuple)
    items[nitems + 1] = KEYS[6 + 2 * i]
    items[nitems + 2] = piece(i)
    nitems = nitems + 2
    local flag = byte(flags, i)
    local deleted = flag == 49
    if deleted then
      parsed[i] = parsed[i] or parse(tuple)
      -- Indexed by when it arrived here (never before its own clock): what the purge horizon counts.
      call('ZADD', KEYS[2], parsed[i][1] > tonumber(now) and parsed[i][6] or now, key)
    elseif flag == 50 then
      parsed[i] = parsed[i] or parse(tuple)
      -- Collected as a tombstone once expired, never before its expiry (docs/PROTOCOL.md §6).
      call('ZADD', KEYS[2], parsed[i][7] > tonumber(now) and parsed[i][8] or now, key)
    elseif prev and (string.match(prev, '^%d+|%d+|1|') or string.match(prev, '^%d+|%d+|0|%x*%+')) then
      call('ZREM', KEYS[2], key)
    end
    if relay then
      local t = parsed[i] or parse(tuple)
      local head = '{"version":' .. t[2] .. ',"updated_at":' .. t[6]
      local r = relayed[i]
      local tail = ',"origin":' .. r[2] .. '}'
      if t[8] ~= '' then tail = ',"origin":' .. r[2] .. ',"expires_at":' .. t[8] .. '}' end
      if deleted then
        call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', 'DEL', 'key', key,
          'meta', head .. tail)
      else
        local tp = ''
        if r[3] ~= '' then tp = ',"trace_parent":' .. r[3] end
        call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*', 'op', 'PUT', 'key', key, 'hash', t[5],
          'data', ARGV[datas + i], 'meta', '{"content_type":"' .. r[1] .. '",' .. sub(head, 2)
          .. tp .. tail)
      end
    end
  end

  -- A conflict: the incoming version lost to a concurrent local one, or beat one that was not
  -- older in version (so it did not descend from it either).
  if log_conflicts and prev and (outcome == 4 or (outcome == 1 and parsed_prev[i][2] >= parsed[i][2])) then
    call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[5], '*', 'key', key, 'local', prev,
      'incoming', tuple, 'winner', outcome == 4 and 'local' or 'incoming')
  end

  if prev then
    out[nout + 1] = outcome + 10
    out[nout + 2] = prev
    nout = nout + 2
  else
    nout = nout + 1
    out[nout] = outcome
  end
end
for first = 1, nitems, 2000 do
  call('MSET', unpack(items, first, math.min(nitems, first + 1999)))
end
return out
