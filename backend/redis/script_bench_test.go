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
// server, shaped like a protocol publish, on the Redis redistest.Require
// finds (REDIS_ADDR, else a private redis-server started for the run; give
// REDIS_ADDR only for a server nothing else uses, since its counters are
// read):
//
//	put/P=n          CompareAndPut of 100 bytes, each goroutine on its
//	                 own key (writeScript)
//	publish=SKB/P=n  UpdateWith of an S KB coordinator value (1 or 8)
//	                 with two puts, a new 300-byte key (the segment blob)
//	                 and a 132-byte key written again each time (the head
//	                 record), each goroutine on its own keys (batchScript)
//
// Reported, from INFO before and after: server-µs/call, the time Redis
// spent inside EVALSHA/EVAL per script run (commandstats: wall clock, so it
// includes any time the Redis thread was preempted on a busy machine);
// server-cpu-µs/call, the Redis main thread's CPU time (user+sys) per
// script run, including reading the request and writing the reply (with
// P=16 the goroutines share pipelines, so that part is spread over many
// calls; CPU time does not count preemption); redis-calls/call, the
// commands the script ran; ops/s of the client (for orientation only).
//
//	go test -run '^$' -bench ScriptServerTime -benchtime 20000x ./backend/redis/
func BenchmarkScriptServerTime(b *testing.B) {
	srv := redistest.Require(b)
	s := openStore(b, srv)
	admin := srv.Client(b)
	ctx := context.Background()
	value := func(n int) []byte { return bytes.Repeat([]byte{'x'}, n) }

	// Load both scripts outside the measurements.
	if _, err := s.CompareAndPut(ctx, "warm", 0, benchPayload); err != nil {
		b.Fatal(err)
	}
	if _, _, err := s.UpdateWith(ctx, nil, "warm-batch", func(backend.Entry) ([]byte, error) { return nil, nil }); err != nil {
		b.Fatal(err)
	}
	put, rec, blob := value(100), value(132), value(300)
	for _, p := range []int{1, 16} {
		b.Run(fmt.Sprintf("put/P=%d", p), func(b *testing.B) {
			run := benchRun.Add(1)
			measureScripts(b, admin, p, func(w int, ops func() bool) error {
				key := fmt.Sprintf("put-%d-%d", run, w)
				var v backend.Version
				for ops() {
					nv, err := s.CompareAndPut(ctx, key, v, put)
					if err != nil {
						return err
					}
					v = nv
				}
				return nil
			})
		})
		for _, size := range []int{1, 8} {
			b.Run(fmt.Sprintf("publish=%dKB/P=%d", size, p), func(b *testing.B) {
				run := benchRun.Add(1)
				cval := value(size << 10)
				fn := func(backend.Entry) ([]byte, error) { return cval, nil }
				measureScripts(b, admin, p, func(w int, ops func() bool) error {
					coord, head := fmt.Sprintf("c-%d-%d", run, w), fmt.Sprintf("h-%d-%d", run, w)
					var headV backend.Version
					for i := 0; ops(); i++ {
						puts := []backend.Put{
							{Key: fmt.Sprintf("x-%d-%d-%d", run, w, i), Value: blob},
							{Key: head, Expect: headV, Value: rec},
						}
						_, vers, err := s.UpdateWith(ctx, puts, coord, fn)
						if err != nil {
							return err
						}
						headV = vers[1]
					}
					return nil
				})
			})
		}
	}
}

// measureScripts runs worker on p goroutines (see parallel) and reports
// what the scripts they ran cost the server.
func measureScripts(b *testing.B, admin goredis.UniversalClient, p int, worker func(w int, ops func() bool) error) {
	b.Helper()
	before, cpu0 := commandStats(b, admin), serverCPU(b, admin)
	parallel(b, p, worker)
	after, cpu1 := commandStats(b, admin), serverCPU(b, admin)
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
	b.ReportMetric((cpu1-cpu0)*1e6/float64(scripts), "server-cpu-µs/call")
	b.ReportMetric(float64(inner)/float64(scripts), "redis-calls/call")
}

// serverCPU returns the Redis main thread's CPU seconds (user + sys) from
// INFO cpu.
func serverCPU(b *testing.B, c goredis.UniversalClient) float64 {
	b.Helper()
	info, err := c.Info(context.Background(), "cpu").Result()
	if err != nil {
		b.Fatal(err)
	}
	var sum float64
	for _, line := range strings.Split(info, "\n") {
		name, v, ok := strings.Cut(strings.TrimSpace(line), ":")
		if ok && (name == "used_cpu_user_main_thread" || name == "used_cpu_sys_main_thread") {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				b.Fatal(err)
			}
			sum += f
		}
	}
	return sum
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
