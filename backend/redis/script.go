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
var writeScript = goredis.NewScript(`
local h = redis.call('HGETALL', KEYS[1])
local v, d, w
for i = 1, #h, 2 do
  local f = h[i]
  if f == 'v' then v = h[i + 1]
  elseif f == 'd' then d = h[i + 1]
  elseif f == 'w' then w = h[i + 1]
  else return redis.error_reply('` + corruptPrefix + ` unexpected field in entry hash') end
end
if #h > 0 and (v == nil or #v > 19 or not string.match(v, '^[1-9][0-9]*$')) then
  return redis.error_reply('` + corruptPrefix + ` missing or malformed version in entry hash')
end
local live = d ~= nil
local op = ARGV[1]
if w ~= nil and w == ARGV[3] then
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
  if live then return {0, cur, d} end
  return {0, '0'}
end
if op == 'put' then
  redis.call('HINCRBY', KEYS[1], 'v', 1)
  redis.call('HSET', KEYS[1], 'd', ARGV[5], 'w', ARGV[3])
  v = redis.call('HGET', KEYS[1], 'v')
  if ARGV[4] ~= '' then redis.call('PUBLISH', ARGV[4], v) end
  return {1, v}
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
