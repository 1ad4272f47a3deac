-- The fields a put's expiry adds to what a local write stores and emits (docs/PROTOCOL.md §1-§4);
-- spliced into write.lua and write_many.lua by `-- @include expiry_fields`. `expires` is the expiry
-- (ms, canonical decimal) or '' for none (always '' for a tombstone). Returns the version tuple's
-- hash field (`h`, or `h+e`), the CDC meta's tail (`,"expires_at":e` or '') and the record
-- header's (`,"e":e` or '').
local function expiry_fields(hash, expires)
  if expires == '' then return hash, '', '' end
  return hash .. '+' .. expires, ',"expires_at":' .. expires, ',"e":' .. expires
end
