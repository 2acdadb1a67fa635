"""The write scripts (only writers run them) and how they are called."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from typing import Any

import redis.exceptions

from flagsync.errors import ConflictError, RefusedChangeError
from flagsync.redisconn import RedisClient

# --- Lua ------------------------------------------------------------------------------

# Every script takes only keys of one environment, hence one slot: fine on Cluster.
# The prelude holds the checks every write script makes before its first write.
_PRELUDE = """
local function split(text)
  local out = {}
  for part in string.gmatch(text, '[^,]+') do out[#out + 1] = part end
  return out
end
-- Each KEYS[i] must have one of the types in wants[i] ("hash|none").
local function type_problem(wants)
  for i, want in ipairs(wants) do
    local got = redis.call('TYPE', KEYS[i]).ok
    if not string.find('|' .. want .. '|', '|' .. got .. '|', 1, true) then
      return KEYS[i] .. ' holds a ' .. got .. ', expected ' .. want
    end
  end
  return nil
end
-- The first of these commands the user running the script may not run (Redis >= 7).
local function denied(commands)
  if redis.acl_check_cmd == nil then return nil end
  for _, command in ipairs(commands) do
    if not redis.acl_check_cmd(unpack(command)) then
      return command[1] .. ' ' .. (command[2] or '')
    end
  end
  return nil
end
local function noperm(what)
  return redis.error_reply('NOPERM this user has no permissions to run ' .. what ..
                           ' (checked before writing anything)')
end
local function valid_version(v)
  return v == '0' or (string.match(v, '^[1-9][0-9]*$') ~= nil and #v <= 16 and
                      tonumber(v) <= 9007199254740992)
end
"""

# KEYS: snapshot meta overrides audit lock flags deltas [damaged keys to delete ...]
# ARGV: 1 lock value ('' = no lock check)
#       2 version check: 'none' (no version field) | 'zero' (none or '0') | 'equals'
#       3 expected version as stored   4 new version (decimal text)
#       5 '1': write the snapshot   6 snapshot bytes
#       7 channel   8 notice ('' = publish nothing)   9 audit maxlen
#       10 expected types per key, ','-separated ('|' between alternatives)
#       11 '1'/'0' per key, ','-separated: delete the key (wrong type) before writing
#       12 n, then n meta field/value pairs; then m, then m override fields to delete;
#          then the index: mode ('' none | 'full' | 'delta'), p, p member/JSON pairs to
#          set, q, q members to delete, the deltas entry ('' none), deltas to keep;
#          then the audit field/value pairs
# Returns the version now stored, as text.
_WRITE_SNAPSHOT = (
    _PRELUDE
    + """
local wants, deletes = split(ARGV[10]), split(ARGV[11])
local problem = type_problem(wants)
if problem then
  return redis.error_reply('FLAGSYNC_CHANGED ' .. problem .. ' (changed since it was read)')
end
if ARGV[1] ~= '' and redis.call('GET', KEYS[5]) ~= ARGV[1] then
  return redis.error_reply('FLAGSYNC_LOCK the sync lock expired or was taken over')
end
local current = false
if deletes[2] ~= '1' then current = redis.call('HGET', KEYS[2], 'version') end
local mode, expected = ARGV[2], ARGV[3]
if (mode == 'none' and current) or (mode == 'equals' and current ~= expected) or
   (mode == 'zero' and current and current ~= '0') then
  local wanted = {none = 'none', zero = '0', equals = expected}
  return redis.error_reply('FLAGSYNC_CONFLICT version is ' .. (current or 'none') ..
                           ', expected ' .. wanted[mode])
end
local n = tonumber(ARGV[12])
local meta = {'version', ARGV[4]}
for i = 13, 12 + 2 * n do meta[#meta + 1] = ARGV[i] end
local m = tonumber(ARGV[13 + 2 * n])
local fields = {}
for i = 14 + 2 * n, 13 + 2 * n + m do fields[#fields + 1] = ARGV[i] end
local at = 14 + 2 * n + m
local imode, p = ARGV[at], tonumber(ARGV[at + 1])
local sets = {}
for i = at + 2, at + 1 + 2 * p do sets[#sets + 1] = ARGV[i] end
at = at + 2 + 2 * p
local q = tonumber(ARGV[at])
local dels = {}
for i = at + 1, at + q do dels[#dels + 1] = ARGV[i] end
at = at + 1 + q
local delta, keep = ARGV[at], tonumber(ARGV[at + 1])
local audit = {'XADD', KEYS[4], 'MAXLEN', '~', ARGV[9], '*'}
for i = at + 2, #ARGV do audit[#audit + 1] = ARGV[i] end
audit[#audit + 1] = 'version'
audit[#audit + 1] = ARGV[4]
local checks = {audit, {'HSET', KEYS[2], unpack(meta)}}
if ARGV[5] == '1' then checks[#checks + 1] = {'SET', KEYS[1], ARGV[6]} end
if ARGV[8] ~= '' then checks[#checks + 1] = {'PUBLISH', ARGV[7], ARGV[8]} end
if #fields > 0 then checks[#checks + 1] = {'HDEL', KEYS[3], unpack(fields)} end
for i, flag in ipairs(deletes) do
  if flag == '1' then checks[#checks + 1] = {'DEL', KEYS[i]} end
end
if imode == 'full' then
  checks[#checks + 1] = {'DEL', KEYS[6]}
  checks[#checks + 1] = {'DEL', KEYS[7]}
end
if #sets > 0 then checks[#checks + 1] = {'HSET', KEYS[6], 'f', 'v'} end
if #dels > 0 then checks[#checks + 1] = {'HDEL', KEYS[6], 'f'} end
if delta ~= '' then
  checks[#checks + 1] = {'HSET', KEYS[7], 'f', 'v'}
  checks[#checks + 1] = {'HKEYS', KEYS[7]}
  checks[#checks + 1] = {'HDEL', KEYS[7], 'f'}
end
local refused = denied(checks)
if refused then return noperm(refused) end
-- Writes. The audit entry goes first: it is the one write whose success depends
-- on the stored data, so if it fails, nothing has been written.
if deletes[4] == '1' then redis.call('DEL', KEYS[4]) end
redis.call(unpack(audit))
for i, flag in ipairs(deletes) do
  if flag == '1' and i ~= 4 then redis.call('DEL', KEYS[i]) end
end
if #fields > 0 then redis.call('HDEL', KEYS[3], unpack(fields)) end
if ARGV[5] == '1' then redis.call('SET', KEYS[1], ARGV[6]) end
if imode == 'full' then redis.call('DEL', KEYS[6], KEYS[7]) end
-- In slices: unpack() of many thousand values overflows Lua's C stack.
for i = 1, #sets, 400 do
  redis.call('HSET', KEYS[6], unpack(sets, i, math.min(i + 399, #sets)))
end
for i = 1, #dels, 400 do
  redis.call('HDEL', KEYS[6], unpack(dels, i, math.min(i + 399, #dels)))
end
if delta ~= '' then
  redis.call('HSET', KEYS[7], ARGV[4], delta)
  local held = redis.call('HKEYS', KEYS[7])
  if #held > keep then
    -- Versions are decimal text below 2^53, exact as Lua numbers; a field that is no
    -- number (damage) sorts first and goes first, and never raises mid-write.
    table.sort(held, function(a, b) return (tonumber(a) or -1) < (tonumber(b) or -1) end)
    for i = 1, #held - keep do redis.call('HDEL', KEYS[7], held[i]) end
  end
end
redis.call('HSET', KEYS[2], unpack(meta))
if ARGV[8] ~= '' then redis.call('PUBLISH', ARGV[7], ARGV[8]) end
return ARGV[4]
"""
)

# KEYS: overrides meta audit
# ARGV: 1 flag  2 override JSON ('' = remove)  3 channel  4 maxlen  5 kind
#       6.. audit field/value pairs
# A key of the wrong type under overrides or audit is replaced (the kill switch
# must work in the worst hour); a damaged meta hash is refused (`sync` repairs it).
# Returns {version, replaced key, what it held, ...}.
_SET_OVERRIDE = (
    _PRELUDE
    + """
local repaired, deletes = {}, {}
for i, want in ipairs({'hash', 'hash', 'stream'}) do
  local got = redis.call('TYPE', KEYS[i]).ok
  if got ~= want and got ~= 'none' then
    if i == 2 then
      return redis.error_reply('FLAGSYNC_DAMAGED ' .. KEYS[2] .. ' holds a ' .. got ..
                               ', not a hash')
    end
    deletes[#deletes + 1] = KEYS[i]
    repaired[#repaired + 1] = KEYS[i]
    repaired[#repaired + 1] = got
  end
end
local current = redis.call('HGET', KEYS[2], 'version') or '0'
if not valid_version(current) then
  return redis.error_reply('FLAGSYNC_DAMAGED the version in ' .. KEYS[2] ..
                           ' is not a whole number from 0 to 2^53')
end
if tonumber(current) >= 9007199254740992 then
  return redis.error_reply('FLAGSYNC_DAMAGED the version in ' .. KEYS[2] ..
                           ' has reached 2^53 and cannot count further')
end
local overrides_gone = deletes[1] == KEYS[1]
if ARGV[2] == '' and (overrides_gone or redis.call('HEXISTS', KEYS[1], ARGV[1]) == 0) then
  return redis.error_reply('FLAGSYNC_NOOVERRIDE no override for ' .. ARGV[1])
end
-- Exact: below 2^53 a double holds every integer, and %.0f prints it in full.
local version = string.format('%.0f', tonumber(current) + 1)
local revision = redis.call('HGET', KEYS[2], 'revision') or ''
local notice = '{"version":' .. version .. ',"revision":' .. cjson.encode(revision) ..
               ',"kind":' .. cjson.encode(ARGV[5]) .. ',"flag":' .. cjson.encode(ARGV[1]) .. '}'
local audit = {'XADD', KEYS[3], 'MAXLEN', '~', ARGV[4], '*'}
for i = 6, #ARGV do audit[#audit + 1] = ARGV[i] end
audit[#audit + 1] = 'version'
audit[#audit + 1] = version
local change = {'HDEL', KEYS[1], ARGV[1]}
if ARGV[2] ~= '' then change = {'HSET', KEYS[1], ARGV[1], ARGV[2]} end
local checks = {audit, change, {'HSET', KEYS[2], 'version', version},
                {'PUBLISH', ARGV[3], notice}}
for _, key in ipairs(deletes) do checks[#checks + 1] = {'DEL', key} end
local refused = denied(checks)
if refused then return noperm(refused) end
if deletes[#deletes] == KEYS[3] then redis.call('DEL', KEYS[3]) end
redis.call(unpack(audit))
if overrides_gone then redis.call('DEL', KEYS[1]) end
redis.call(unpack(change))
redis.call('HSET', KEYS[2], 'version', version)
redis.call('PUBLISH', ARGV[3], notice)
local out = {version}
for _, item in ipairs(repaired) do out[#out + 1] = item end
return out
"""
)

# KEYS: overrides audit; ARGV: maxlen at flag json flag json ...
# Deletes each override only if it is still the (expired) value read, so a
# fresh kill issued meanwhile is never removed.
_PURGE_EXPIRED = (
    _PRELUDE
    + """
if type_problem({'hash', 'stream|none'}) then return 0 end
local refused = denied({{'HDEL', KEYS[1], 'f'},
                        {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'kind', 'expire'}})
if refused then return noperm(refused) end
local removed = 0
for i = 3, #ARGV, 2 do
  if redis.call('HGET', KEYS[1], ARGV[i]) == ARGV[i + 1] then
    redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[1], '*', 'kind', 'expire',
               'flag', ARGV[i], 'at', ARGV[2], 'actor', 'flagsync')
    redis.call('HDEL', KEYS[1], ARGV[i])
    removed = removed + 1
  end
end
return removed
"""
)

_RELEASE_LOCK = """
if redis.call('TYPE', KEYS[1]).ok == 'string' and redis.call('GET', KEYS[1]) == ARGV[1] then
  return redis.call('DEL', KEYS[1])
end
return 0
"""

# KEYS: lock audit; ARGV: expected type, expected value, maxlen, audit pairs...
# Removes the lock only if it is still exactly what was inspected; audits the
# removal unless the audit key itself is damaged (a sync then replaces it).
_BREAK_LOCK = (
    _PRELUDE
    + """
if redis.call('TYPE', KEYS[1]).ok ~= ARGV[1] then return 0 end
if ARGV[1] == 'string' and redis.call('GET', KEYS[1]) ~= ARGV[2] then return 0 end
local audited = redis.call('TYPE', KEYS[2]).ok
audited = audited == 'stream' or audited == 'none'
local audit = {'XADD', KEYS[2], 'MAXLEN', '~', ARGV[3], '*'}
for i = 4, #ARGV do audit[#audit + 1] = ARGV[i] end
local checks = {{'DEL', KEYS[1]}}
if audited then checks[2] = audit end
local refused = denied(checks)
if refused then return noperm(refused) end
if audited then redis.call(unpack(audit)) end
redis.call('DEL', KEYS[1])
if audited then return 1 end
return 2
"""
)


# How Redis words an ACL refusal of a command run *inside* a script: a plain
# error reply, which redis-py raises as ResponseError, not NoPermissionError.
_SCRIPT_ACL_DENIED = ("can't run this command", "no permissions")


def _eval(client: RedisClient, script: str, keys_: Sequence[str], args: Sequence[Any]) -> Any:
    """Run ``script`` by SHA, loading it on the first NOSCRIPT (works on Cluster too).

    An ACL refusal inside the script becomes :class:`redis.exceptions.NoPermissionError`,
    so that callers map it like any other permission failure (CLI exit 1, one line)
    instead of letting a bare ResponseError escape as a traceback.
    """
    sha = hashlib.sha1(script.encode()).hexdigest()
    try:
        try:
            return client.evalsha(sha, len(keys_), *keys_, *args)
        except redis.exceptions.NoScriptError:
            return client.eval(script, len(keys_), *keys_, *args)
    except redis.exceptions.ResponseError as exc:
        text = str(exc)
        if not isinstance(exc, redis.exceptions.NoPermissionError) and any(
            marker in text for marker in _SCRIPT_ACL_DENIED
        ):
            raise redis.exceptions.NoPermissionError(text) from exc
        raise


def _script_error(exc: redis.exceptions.ResponseError) -> RefusedChangeError | None:
    """The refusal a write script reported on purpose, or ``None`` for a Redis error."""
    text = str(exc)
    for marker, kind in (
        ("FLAGSYNC_LOCK", ConflictError),
        ("FLAGSYNC_CONFLICT", ConflictError),
        ("FLAGSYNC_CHANGED", ConflictError),
        ("FLAGSYNC_NOOVERRIDE", RefusedChangeError),
        ("FLAGSYNC_DAMAGED", RefusedChangeError),
    ):
        if marker in text:
            detail = text.split(marker, 1)[1].split(" script:", 1)[0].strip()
            if marker == "FLAGSYNC_DAMAGED":
                detail += "; run `flagsync sync` to repair it"
            return kind(detail)
    return None
