#!lua flags=allow-cross-slot-keys
-- `apply` for several partitions of a partitioned store that live on one shard, in one call
-- (docs/PROTOCOL.md §9). Redis 7 lets a script flagged allow-cross-slot-keys touch keys of any
-- slot its server holds, but a cluster still refuses a call whose declared keys span slots
-- (CROSSSLOT): so one key is declared, to route the call, and each group's keys travel as
-- arguments. Each group is one `apply` call's keys and arguments, run by the unchanged `apply`
-- script body below, so the LWW rule stays written once. Before any group writes, each group's
-- keys are touched (EXISTS): a slot this server no longer holds, or is moving away, fails the
-- call before it writes anything, and the client applies the groups one call each.
--
-- KEYS: 1 the routing key (one of the first group's keys)
-- ARGV: 1 the number of groups G, then per group its number of keys and of arguments (2G), then
--       per group its keys and then its arguments, group after group
-- Returns one `apply` reply per group, in order; or an error: a key not served here (nothing is
-- written), or the first error of a group's `apply` (the groups before it are applied; applying
-- them again is a no-op).

local function apply_one(KEYS, ARGV)
-- @script apply
end

local groups = tonumber(ARGV[1])
if groups == nil or #ARGV < 1 + 2 * groups then
  return redis.error_reply('ERR apply_shard: bad group header')
end
local calls = {}
local at = 1 + 2 * groups -- ARGV[at + 1] is the next group's first key
for g = 1, groups do
  local nkeys, nargs = tonumber(ARGV[2 * g]), tonumber(ARGV[2 * g + 1])
  if nkeys == nil or nargs == nil or nkeys < 1 or at + nkeys + nargs > #ARGV then
    return redis.error_reply('ERR apply_shard: group ' .. g .. ' runs past the arguments')
  end
  local keys, args = {}, {}
  for i = 1, nkeys do keys[i] = ARGV[at + i] end
  at = at + nkeys
  for i = 1, nargs do args[i] = ARGV[at + i] end
  at = at + nargs
  calls[g] = { keys, args }
end
if at ~= #ARGV then
  return redis.error_reply('ERR apply_shard: ' .. #ARGV .. ' arguments, the groups name ' .. at)
end
-- Every group's keys are this server's, and none is in a slot moving away, or nothing is written:
-- a group's keys share one slot, and the cluster checks that slot for each command run here.
for g = 1, groups do
  local reply = redis.pcall('EXISTS', unpack(calls[g][1]))
  if type(reply) == 'table' and reply.err then return reply end
end
local out = {}
for g = 1, groups do
  local reply = apply_one(calls[g][1], calls[g][2])
  if type(reply) == 'table' and reply.err then return reply end
  out[g] = reply
end
return out
