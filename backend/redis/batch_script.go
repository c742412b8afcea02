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
//
// Everything is read and checked (and every new version computed) before
// anything is written, so a run that fails writes nothing. Redis commands
// per run: for each key an HKEYS, plus an HMGET when it exists (entry in
// luaEntry: values are not read); for each written key one HSET (version,
// value and token) and one PUBLISH; a conflict reply adds an HGET of the
// current value. A protocol publish (a new segment blob, the head record,
// the coordinator) is 11 commands: 5 reads, 3 HSETs, 3 PUBLISHes (it was
// 15 with HGETALL, HINCRBY, HSET and HGET per key).
var batchScript = goredis.NewScript(luaEntry + `
local n = #KEYS - 1
local tok = ARGV[1]
local write = ARGV[3] == '1'
local last = n
if write then last = n + 1 end
-- Read every key: vs[i] its version (false: none), cur[i] its version as
-- the contract sees it ('0' unless it holds a value). (The tables are made
-- at their final size: growing a Lua table rehashes it.)
local vs, cur, live = {unpack(KEYS)}, {unpack(KEYS)}, {unpack(KEYS)}
local replay = last > 0
for i = 1, n + 1 do
  local v, w, l = entry(KEYS[i])
  if v == nil then return w end
  vs[i], live[i] = v, l
  if l then cur[i] = v else cur[i] = '0' end
  if i <= last and (w ~= tok or not l) then replay = false end
end
if replay then
  local out = {1, cur[n + 1], unpack(KEYS, 1, n)}
  for i = 1, n do out[i + 2] = cur[i] end
  return out
end
for i = 1, n do
  if cur[i] ~= ARGV[3 + 2 * i] then
    if live[i] then return {0, i, cur[i], redis.call('HGET', KEYS[i], 'd')} end
    return {0, i, '0'}
  end
end
if cur[n + 1] ~= ARGV[2] then
  if live[n + 1] then return {3, cur[n + 1], redis.call('HGET', KEYS[n + 1], 'd')} end
  return {3, '0'}
end
for i = 1, last do
  vs[i] = nextVersion(vs[i])
  if vs[i] == nil then return ` + errOverflowReply + ` end
end
-- Write: puts first, then the key; out is {1, key version, put versions}.
local out = {1, ARGV[2], unpack(KEYS, 1, n)}
for i = 1, last do
  local val
  if i <= n then val = ARGV[4 + 2 * i]; out[i + 2] = vs[i] else val = ARGV[4]; out[2] = vs[i] end
  redis.call('HSET', KEYS[i], 'v', vs[i], 'd', val, 'w', tok)
  redis.call('PUBLISH', KEYS[i], vs[i])
end
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
