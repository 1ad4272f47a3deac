-- Appends changes to the change feed (docs/PROTOCOL.md §10); spliced into the scripts that write
-- by `-- @include feed_append`. `changes` holds key, version tuple pairs in the order the script
-- applies them. They go in entries of up to 32 changes (an XADD costs several times what one more
-- pair in it does), each with the id `<n>-0`, n the ordinal of its last change: the count of
-- changes ever appended, kept in `counter`. Ordinals are dense, so a reader knows exactly which
-- changes trimming took, and MINID trims the feed to about `maxlen` changes whatever the entries
-- hold. Fields: `t` the writer's clock (ms), `s` the source, then the pairs. A counter behind the
-- stream (deleted by hand) is first moved to the stream's last id.
local function feed_append(stream, counter, maxlen, now, source, changes, nchanges, retried)
  local total = nchanges / 2
  if total == 0 then return end
  local first = redis.call('INCRBY', counter, total) - total -- the ordinal before this call's
  local minid = string.format('%.0f', math.max(0, first + total - tonumber(maxlen)))
  for from = 1, nchanges, 64 do
    local to = math.min(nchanges, from + 63)
    local id = string.format('%.0f', first + to / 2) .. '-0'
    local added
    if to == nchanges then -- trimmed once per call
      added = redis.pcall('XADD', stream, 'MINID', '~', minid, id, 't', now, 's', source,
        unpack(changes, from, to))
    else
      added = redis.pcall('XADD', stream, id, 't', now, 's', source, unpack(changes, from, to))
    end
    if type(added) == 'table' and added.err then
      local top = redis.call('XREVRANGE', stream, '+', '-', 'COUNT', 1)[1]
      if retried or from > 1 or not top then
        -- Not a counter behind the stream: raise the error as it is.
        redis.call('XADD', stream, 'MINID', '~', minid, id, 't', now, 's', source,
          unpack(changes, from, to))
      end
      redis.call('SET', counter, string.match(top[1], '^(%d+)'))
      return feed_append(stream, counter, maxlen, now, source, changes, nchanges, true)
    end
  end
end
