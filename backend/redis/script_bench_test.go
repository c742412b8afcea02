package redis

import (
	"bytes"
	"context"
	"fmt"
	"strconv"
	"strings"
	"testing"

	goredis "github.com/redis/go-redis/v9"

	"github.com/stickypub/stickypub/backend"
	"github.com/stickypub/stickypub/internal/redistest"
)

// BenchmarkScriptServerTime measures what the write scripts cost the
// server: the Redis thread's µs per script run (INFO commandstats of
// EVALSHA and EVAL, before and after, on a private redis-server started for
// the run) and the redis.call()s each run makes. One goroutine, one key
// chain, shaped like a protocol publish:
//
//	put      CompareAndPut of 100 bytes on one key (writeScript)
//	publish  UpdateWith of a 1 KB coordinator value with two puts, a new
//	         300-byte key (the segment blob) and a 132-byte key written
//	         again each time (the head record): batchScript
//
// Reported: server-µs/call, redis-calls/call (commands the script ran),
// and ops/s of the round trips (client side, for orientation only).
//
//	go test -run '^$' -bench ScriptServerTime -benchtime 20000x ./backend/redis/
func BenchmarkScriptServerTime(b *testing.B) {
	local := redistest.StartLocal(b, redistest.LocalOptions{})
	srv := local.Server()
	s := openStore(b, srv)
	admin := srv.Client(b)
	ctx := context.Background()
	value := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }

	b.Run("put", func(b *testing.B) {
		key := fmt.Sprintf("put-%d", benchRun.Add(1))
		v, err := s.CompareAndPut(ctx, key, 0, benchPayload) // loads the script
		if err != nil {
			b.Fatal(err)
		}
		val := value(100)
		before := commandStats(b, admin)
		b.ResetTimer()
		for range b.N {
			if v, err = s.CompareAndPut(ctx, key, v, val); err != nil {
				b.Fatal(err)
			}
		}
		b.StopTimer()
		reportScriptStats(b, before, commandStats(b, admin))
	})

	b.Run("publish", func(b *testing.B) {
		run := benchRun.Add(1)
		coord, head := fmt.Sprintf("c-%d", run), fmt.Sprintf("h-%d", run)
		blob, rec, cval := value(300), value(132), value(1024)
		fn := func(backend.Entry) ([]byte, error) { return cval, nil }
		var headV backend.Version
		publish := func(i int) {
			puts := []backend.Put{
				{Key: fmt.Sprintf("x-%d-%d", run, i), Value: blob},
				{Key: head, Expect: headV, Value: rec},
			}
			_, vers, err := s.UpdateWith(ctx, puts, coord, fn)
			if err != nil {
				b.Fatal(err)
			}
			headV = vers[1]
		}
		publish(-1) // loads the script, fills the hint
		before := commandStats(b, admin)
		b.ResetTimer()
		for i := range b.N {
			publish(i)
		}
		b.StopTimer()
		reportScriptStats(b, before, commandStats(b, admin))
	})
}

// cmdStat is one command's line of INFO commandstats.
type cmdStat struct{ calls, usec int64 }

// commandStats reads INFO commandstats: command name to calls and µs.
func commandStats(b *testing.B, c goredis.UniversalClient) map[string]cmdStat {
	b.Helper()
	info, err := c.Info(context.Background(), "commandstats").Result()
	if err != nil {
		b.Fatal(err)
	}
	stats := map[string]cmdStat{}
	for _, line := range strings.Split(info, "\n") {
		name, rest, ok := strings.Cut(strings.TrimSpace(line), ":")
		if !ok || !strings.HasPrefix(name, "cmdstat_") {
			continue
		}
		var st cmdStat
		for _, kv := range strings.Split(rest, ",") {
			k, v, _ := strings.Cut(kv, "=")
			n, _ := strconv.ParseInt(v, 10, 64)
			switch k {
			case "calls":
				st.calls = n
			case "usec":
				st.usec = n
			}
		}
		stats[strings.TrimPrefix(name, "cmdstat_")] = st
	}
	return stats
}

// reportScriptStats reports the server µs per script run and the commands
// run inside the scripts between two commandstats snapshots.
func reportScriptStats(b *testing.B, before, after map[string]cmdStat) {
	var scripts, usec, inner int64
	for name, st := range after {
		calls := st.calls - before[name].calls
		switch name {
		case "evalsha", "eval":
			scripts += calls
			usec += st.usec - before[name].usec
		case "info":
		default:
			inner += calls
		}
	}
	if scripts == 0 {
		b.Fatal("no script ran")
	}
	b.ReportMetric(float64(usec)/float64(scripts), "server-µs/call")
	b.ReportMetric(float64(inner)/float64(scripts), "redis-calls/call")
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "ops/s")
}
