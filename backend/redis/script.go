package redis

import (
	"fmt"
	"strconv"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickypub/stickypub/backend"
)

// corruptPrefix starts the error replies the script raises for hashes it
// cannot decode; errors.go maps them to backend.ErrCorrupt.
const corruptPrefix = "STICKYPUB_CORRUPT"

// luaEntry is the Lua the write scripts share: reading an entry hash
// without its value, and the next version. What a script costs Redis 7.0
// (instruction counts under callgrind, docs/redis.md): a fixed part per
// EVALSHA; about 4,000-7,000 instructions per redis.call(); and ~11 per
// byte of every string that enters Lua (arguments and replies: Redis's Lua
// hashes every byte of a new string). So these functions make as few calls
// as they can and leave the value, which may be large, in Redis.
//
// entry(k) reads hash k with one HKEYS (field names only) and, when the
// hash exists, one HMGET of v and w. It returns the version (a string, or
// false when the hash does not exist), the write token (false when none)
// and whether the hash holds a value (field d); or nil and an error reply
// starting with STICKYPUB_CORRUPT for a field other than v, d and w, or a
// missing or malformed version. A conflict reply reads the value itself
// (HGET).
//
// nextVersion(v) is v+1 in decimal, computed on the string so that it stays
// exact beyond 2^53 ("1" for false, a hash never written), or nil past
// 2^63-1, where the HINCRBY these scripts used before would have failed.
const luaEntry = `
local function entry(k)
  local fields = redis.call('HKEYS', k)
  if #fields == 0 then return false, false, false end
  local live = false
  for i = 1, #fields do
    local f = fields[i]
    if f == 'd' then live = true
    elseif f ~= 'v' and f ~= 'w' then
      return nil, redis.error_reply('` + corruptPrefix + ` unexpected field in entry hash')
    end
  end
  local vw = redis.call('HMGET', k, 'v', 'w')
  local v = vw[1]
  if not v or #v > 19 or not string.match(v, '^[1-9][0-9]*$') then
    return nil, redis.error_reply('` + corruptPrefix + ` missing or malformed version in entry hash')
  end
  return v, vw[2], live
end
local function nextVersion(v)
  if not v then return '1' end
  if #v == 19 and v >= '9223372036854775807' then return nil end
  local last = string.byte(v, -1)
  if last ~= 57 then return string.sub(v, 1, -2) .. string.char(last + 1) end
  local i = #v - 1
  while i > 0 and string.byte(v, i) == 57 do i = i - 1 end
  if i == 0 then return '1' .. string.rep('0', #v) end
  return string.sub(v, 1, i - 1) .. string.char(string.byte(v, i) + 1) .. string.rep('0', #v - i)
end
`

// errOverflowReply is the error reply of a write past the largest version
// (HINCRBY's own message, which the scripts used to raise).
const errOverflowReply = `redis.error_reply('ERR increment or decrement would overflow')`

// writeScript is the only write path: a compare-and-put or a compare-and-
// delete of one key, atomically, with a notification.
//
//	KEYS[1]  the entry hash
//	ARGV[1]  "put" or "del"
//	ARGV[2]  expected version, decimal ("0": the key must not exist)
//	ARGV[3]  write token, unique per call
//	ARGV[4]  channel to PUBLISH the new version on ("" for none)
//	ARGV[5]  value (put only)
//
// Replies: {1, version} done (the new version for put, the deleted one for
// del); {0, current version, current value} conflict (version "0" and no
// value when the key does not exist); {2} del of a missing key; an error
// reply starting with STICKYPUB_CORRUPT for a hash it does not understand.
// Comparing versions as strings keeps them exact beyond 2^53.
//
// Redis commands per run: a put of a new key HKEYS, HSET, PUBLISH; of an
// existing key HKEYS, HMGET, HSET, PUBLISH (one HSET writes version, value
// and token); a conflict adds an HGET of the current value.
var writeScript = goredis.NewScript(luaEntry + `
local v, w, live = entry(KEYS[1])
if v == nil then return w end
local op = ARGV[1]
if w == ARGV[3] then
  if (op == 'put' and live) or (op == 'del' and not live) then
    return {1, v}
  end
end
if op == 'del' and not live then
  return {2}
end
local cur = '0'
if live then cur = v end
if cur ~= ARGV[2] then
  if live then return {0, cur, redis.call('HGET', KEYS[1], 'd')} end
  return {0, '0'}
end
if op == 'put' then
  local nv = nextVersion(v)
  if nv == nil then return ` + errOverflowReply + ` end
  redis.call('HSET', KEYS[1], 'v', nv, 'd', ARGV[5], 'w', ARGV[3])
  if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], nv) end
  return {1, nv}
end
redis.call('HDEL', KEYS[1], 'd')
redis.call('HSET', KEYS[1], 'w', ARGV[3])
if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], '0') end
return {1, v}
`)

// Script outcomes (first element of the reply).
const (
	outcomeConflict = 0
	outcomeDone     = 1
	outcomeNotFound = 2
)

// writeReply is a decoded script reply.
type writeReply struct {
	outcome int64
	version backend.Version
	value   []byte
	hasVal  bool
}

// parseWriteReply decodes the script's array reply.
func parseWriteReply(res any) (writeReply, error) {
	arr, ok := res.([]any)
	if !ok || len(arr) == 0 {
		return writeReply{}, fmt.Errorf("%w: unexpected script reply %T", backend.ErrCorrupt, res)
	}
	var r writeReply
	switch x := arr[0].(type) {
	case int64:
		r.outcome = x
	default:
		return r, fmt.Errorf("%w: unexpected script status %T", backend.ErrCorrupt, arr[0])
	}
	if len(arr) > 1 {
		v, err := parseVersion(arr[1])
		if err != nil {
			return r, err
		}
		r.version = v
	}
	if len(arr) > 2 {
		switch x := arr[2].(type) {
		case string:
			r.value, r.hasVal = []byte(x), true
		case nil:
		default:
			return r, fmt.Errorf("%w: unexpected value type %T in script reply", backend.ErrCorrupt, arr[2])
		}
	}
	return r, nil
}

// parseVersion decodes a version sent as a decimal string (or an integer).
func parseVersion(x any) (backend.Version, error) {
	switch x := x.(type) {
	case int64:
		if x < 0 {
			return 0, fmt.Errorf("%w: negative version %d", backend.ErrCorrupt, x)
		}
		return backend.Version(x), nil
	case string:
		return parseVersionString(x)
	default:
		return 0, fmt.Errorf("%w: unexpected version type %T", backend.ErrCorrupt, x)
	}
}

// parseVersionString accepts canonical decimal numbers only ("0" included).
func parseVersionString(s string) (backend.Version, error) {
	if s == "" || (len(s) > 1 && s[0] == '0') {
		return 0, fmt.Errorf("%w: malformed version %q", backend.ErrCorrupt, s)
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: malformed version %q", backend.ErrCorrupt, s)
	}
	return backend.Version(n), nil
}
