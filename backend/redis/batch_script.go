package redis

// The batch script: compare-and-puts of several keys and the write of one
// more key at the version its new value was computed from, all or nothing,
// in one Lua run (backend.Batcher).

import (
	"fmt"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickypub/stickypub/backend"
)

// batchScript checks and writes one batch atomically.
//
//	KEYS[1..n]    the puts' entry hashes
//	KEYS[n+1]     the updated key's entry hash
//	ARGV[1]       write token, unique per UpdateWith attempt
//	ARGV[2]       the updated key's version its new value was computed
//	              from ("0": missing)
//	ARGV[3]       "1" to write the updated key, "0" to leave it
//	              (ErrSkipUpdate)
//	ARGV[4]       its new value ("" when left)
//	ARGV[3+2i]    put i's expected version, ARGV[4+2i] its value
//
// Every written key gets the token and a PUBLISH of its new version on its
// own name (the Watch channel), as with writeScript. Replies: {1, key
// version, put versions...} done; {0, i, current version, current value}
// put i is not at its expected version (version "0" and no value when the
// key does not exist); {3, current version, current value} the updated key
// is not at ARGV[2]; an error reply starting with STICKYPUB_CORRUPT for a
// hash it does not understand. A replay of a batch that landed (every
// written key still carries the token) answers done again.
var batchScript = goredis.NewScript(`
local function entry(k)
  local h = redis.call('HGETALL', k)
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
  local cur = '0'
  if d ~= nil then cur = v end
  return {cur, d, w}
end
local n = #KEYS - 1
local tok = ARGV[1]
local write = ARGV[3] == '1'
local es = {}
local replay = n > 0 or write
for i = 1, n + 1 do
  local e = entry(KEYS[i])
  if e.err then return e end
  es[i] = e
  if (i <= n or write) and (e[3] ~= tok or e[2] == nil) then replay = false end
end
if replay then
  local out = {1, es[n + 1][1]}
  for i = 1, n do out[i + 2] = es[i][1] end
  return out
end
for i = 1, n do
  if es[i][1] ~= ARGV[3 + 2 * i] then
    if es[i][2] ~= nil then return {0, i, es[i][1], es[i][2]} end
    return {0, i, '0'}
  end
end
local ek = es[n + 1]
if ek[1] ~= ARGV[2] then
  if ek[2] ~= nil then return {3, ek[1], ek[2]} end
  return {3, '0'}
end
local out = {1, ARGV[2]}
local function put(k, val)
  redis.call('HINCRBY', k, 'v', 1)
  redis.call('HSET', k, 'd', val, 'w', tok)
  local v = redis.call('HGET', k, 'v')
  redis.call('PUBLISH', k, v)
  return v
end
for i = 1, n do out[i + 2] = put(KEYS[i], ARGV[4 + 2 * i]) end
if write then out[2] = put(KEYS[n + 1], ARGV[4]) end
return out
`)

// Batch script outcomes (first element of the reply) besides outcomeDone.
const (
	outcomePutConflict = 0 // a put is not at its expected version
	outcomeKeyMoved    = 3 // the updated key is not at the version fn saw
)

// batchReply is a decoded batch script reply.
type batchReply struct {
	outcome int64
	keyVer  backend.Version   // done: the updated key's version
	vers    []backend.Version // done: each put's new version
	put     int               // put conflict: the put's index
	current backend.Entry     // put conflict, key moved: the key's entry
}

// parseBatchReply decodes the batch script's array reply for n puts.
func parseBatchReply(res any, n int) (batchReply, error) {
	arr, ok := res.([]any)
	if !ok || len(arr) < 2 {
		return batchReply{}, fmt.Errorf("%w: unexpected batch script reply %v", backend.ErrCorrupt, res)
	}
	var r batchReply
	if r.outcome, ok = arr[0].(int64); !ok {
		return r, fmt.Errorf("%w: unexpected batch script status %T", backend.ErrCorrupt, arr[0])
	}
	entryAt := func(i int) (backend.Entry, error) {
		v, err := parseVersion(arr[i])
		if err != nil || v == 0 {
			return backend.Entry{}, err
		}
		e := backend.Entry{Version: v, Value: []byte{}}
		if len(arr) > i+1 {
			s, ok := arr[i+1].(string)
			if !ok {
				return e, fmt.Errorf("%w: unexpected value type %T in batch script reply", backend.ErrCorrupt, arr[i+1])
			}
			e.Value = []byte(s)
		}
		return e, nil
	}
	var err error
	switch r.outcome {
	case outcomeDone:
		if len(arr) != n+2 {
			return r, fmt.Errorf("%w: batch script reply has %d versions for %d puts", backend.ErrCorrupt, len(arr)-2, n)
		}
		if r.keyVer, err = parseVersion(arr[1]); err != nil {
			return r, err
		}
		r.vers = make([]backend.Version, n)
		for i := range n {
			if r.vers[i], err = parseVersion(arr[i+2]); err != nil {
				return r, err
			}
		}
	case outcomePutConflict:
		i, ok := arr[1].(int64)
		if !ok || i < 1 || int(i) > n || len(arr) < 3 {
			return r, fmt.Errorf("%w: malformed batch conflict reply", backend.ErrCorrupt)
		}
		r.put = int(i) - 1
		r.current, err = entryAt(2)
	case outcomeKeyMoved:
		r.current, err = entryAt(1)
	default:
		err = fmt.Errorf("%w: unexpected batch script outcome %d", backend.ErrCorrupt, r.outcome)
	}
	return r, err
}
