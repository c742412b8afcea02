package conformance

import (
	"context"
	"errors"
	"fmt"
	"math"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/anishathalye/porcupine"

	"github.com/stickypub/stickypub/backend"
)

// The linearizability check records a concurrent history of Get and
// CompareAndPut calls, per key, and asks porcupine whether some order of
// the calls, each placed at one instant inside its call/return interval,
// explains every result under the sequential specification linModel.

// linKind names the operation of a linInput.
type linKind int

const (
	linGet linKind = iota
	linCAS
)

// linInput is what a client asked for.
type linInput struct {
	Key    string
	Kind   linKind
	Expect backend.Version // linCAS
	Value  string          // linCAS
}

// linOutput is what the store answered.
type linOutput struct {
	// Found: a Get found the key (Value, Version).
	Found bool
	// OK: a CompareAndPut succeeded with the new Version.
	OK bool
	// Known: a CompareAndPut conflict carried the current entry (Value,
	// Version; Version 0 means absent).
	Known bool
	// Unknown: a CompareAndPut failed with neither success nor conflict
	// (timeout, lost connection): it may or may not have been applied.
	Unknown bool
	Value   string
	Version backend.Version
}

// linState is the model's state of one key, a register with a version.
type linState struct {
	Value string
	// Version is the current version when Exact (0: absent). When not
	// Exact, a CompareAndPut of unknown outcome wrote Value, and all that
	// is known is that the version is greater than Version.
	Version backend.Version
	Exact   bool
}

// mayBe reports whether the register's version may be v.
func (s linState) mayBe(v backend.Version) bool {
	if s.Exact {
		return s.Version == v
	}
	return v > s.Version
}

// observe checks a read of (val, ver) against s; reading an inexact state
// pins its version.
func (s linState) observe(val string, ver backend.Version) (bool, linState) {
	if ver == 0 {
		return false, s
	}
	if s.Exact {
		return s.Version == ver && s.Value == val, s
	}
	if s.Value == val && ver > s.Version {
		return true, linState{Value: val, Version: ver, Exact: true}
	}
	return false, s
}

// linStep is the sequential specification of one key.
//
// An operation of unknown outcome gets the return time math.MaxInt64, so
// porcupine may place it anywhere after its call. Placing it after every
// other operation is the same as "never applied"; anywhere else it is
// applied if the versions match. That way a deterministic model covers
// both possibilities.
func linStep(state, input, output any) (bool, any) {
	st, in, out := state.(linState), input.(linInput), output.(linOutput)
	if in.Kind == linGet {
		if !out.Found {
			return st.Exact && st.Version == 0, st
		}
		return st.observe(out.Value, out.Version)
	}
	switch {
	case out.Unknown:
		if st.mayBe(in.Expect) {
			return true, linState{Value: in.Value, Version: in.Expect, Exact: false}
		}
		return true, st
	case out.OK:
		if !st.mayBe(in.Expect) || out.Version <= in.Expect {
			return false, st
		}
		return true, linState{Value: in.Value, Version: out.Version, Exact: true}
	default: // conflict
		if st.Exact && st.Version == in.Expect {
			return false, st
		}
		if !out.Known {
			return true, st
		}
		if out.Version == 0 {
			return st.Exact && st.Version == 0, st
		}
		if out.Version == in.Expect {
			return false, st
		}
		return st.observe(out.Value, out.Version)
	}
}

// linModel is the porcupine model: one register per key.
var linModel = porcupine.Model{
	Partition: func(history []porcupine.Operation) [][]porcupine.Operation {
		byKey := map[string][]porcupine.Operation{}
		var keys []string
		for _, op := range history {
			k := op.Input.(linInput).Key
			if _, ok := byKey[k]; !ok {
				keys = append(keys, k)
			}
			byKey[k] = append(byKey[k], op)
		}
		out := make([][]porcupine.Operation, 0, len(keys))
		for _, k := range keys {
			out = append(out, byKey[k])
		}
		return out
	},
	Init: func() any { return linState{Exact: true} },
	Step: linStep,
	DescribeOperation: func(input, output any) string {
		in, out := input.(linInput), output.(linOutput)
		if in.Kind == linGet {
			if !out.Found {
				return fmt.Sprintf("get(%s) → absent", in.Key)
			}
			return fmt.Sprintf("get(%s) → v%d %q", in.Key, out.Version, out.Value)
		}
		call := fmt.Sprintf("cas(%s, expect v%d, %q)", in.Key, in.Expect, in.Value)
		switch {
		case out.Unknown:
			return call + " → unknown outcome"
		case out.OK:
			return fmt.Sprintf("%s → ok v%d", call, out.Version)
		case out.Known && out.Version == 0:
			return call + " → conflict (absent)"
		case out.Known:
			return fmt.Sprintf("%s → conflict (current v%d %q)", call, out.Version, out.Value)
		}
		return call + " → conflict"
	},
	DescribeState: func(state any) string {
		st := state.(linState)
		switch {
		case !st.Exact:
			return fmt.Sprintf("%q at a version > %d", st.Value, st.Version)
		case st.Version == 0:
			return "absent"
		}
		return fmt.Sprintf("v%d %q", st.Version, st.Value)
	},
}

// linRecorder collects the operations of all clients.
type linRecorder struct {
	start time.Time

	mu      sync.Mutex
	ops     []porcupine.Operation
	clients int
}

// now is the history's clock: monotonic nanoseconds since the start.
func (r *linRecorder) now() int64 { return int64(time.Since(r.start)) }

// newClient returns a fresh client id. A client whose operation ended with
// an unknown outcome continues under a new id, since that operation stays
// open until the end of the history.
func (r *linRecorder) newClient() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.clients++
	return r.clients - 1
}

func (r *linRecorder) add(client int, in linInput, call int64, out linOutput, ret int64) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.ops = append(r.ops, porcupine.Operation{ClientId: client, Input: in, Call: call, Output: out, Return: ret})
}

// linClient runs ops random operations on key through st, choosing the
// expected versions of its CompareAndPuts from what it has seen: mostly
// the latest, sometimes 0, a stale one or a forged one.
func linClient(ctx context.Context, r *linRecorder, st backend.Store, key string, idx, ops int, rng *rand.Rand) {
	client := r.newClient()
	var seen []backend.Version // versions this client has seen for key
	var last backend.Version   // the latest of them, 0 when it saw "absent"
	for i := range ops {
		if ctx.Err() != nil {
			return
		}
		// Let the other clients of the key run, so that operations
		// overlap even on a store that answers in nanoseconds.
		runtime.Gosched()
		if rng.IntN(2) == 0 {
			in := linInput{Key: key, Kind: linGet}
			call := r.now()
			e, err := st.Get(ctx, key)
			ret := r.now()
			var out linOutput
			switch {
			case err == nil:
				out = linOutput{Found: true, Value: string(e.Value), Version: e.Version}
				last, seen = e.Version, append(seen, e.Version)
			case errors.Is(err, backend.ErrNotFound):
				last = 0
			default:
				continue // a failed read changes nothing: leave it out
			}
			r.add(client, in, call, out, ret)
			continue
		}
		expect := last
		switch p := rng.IntN(10); {
		case p == 0:
			expect = 0
		case p == 1:
			expect = last + 1 // never issued for this key (the lowest forgery)
		case p <= 3 && len(seen) > 0:
			expect = seen[rng.IntN(len(seen))]
		}
		in := linInput{Key: key, Kind: linCAS, Expect: expect, Value: fmt.Sprintf("c%d.%d", idx, i)}
		call := r.now()
		v, err := st.CompareAndPut(ctx, key, expect, []byte(in.Value))
		ret := r.now()
		var out linOutput
		var ce *backend.ConflictError
		switch {
		case err == nil:
			out = linOutput{OK: true, Version: v}
			last, seen = v, append(seen, v)
		case errors.As(err, &ce) && ce.Known:
			out = linOutput{Known: true, Value: string(ce.Current.Value), Version: ce.Current.Version}
			last = ce.Current.Version
			if last != 0 {
				seen = append(seen, last)
			}
		case errors.Is(err, backend.ErrConflict):
		default:
			// Timed out, cancelled or failed in transit: it may have
			// been applied. It stays open until the end of the history.
			out = linOutput{Unknown: true}
			ret = math.MaxInt64
		}
		r.add(client, in, call, out, ret)
		if out.Unknown {
			client = r.newClient()
		}
	}
}

func (s *suite) testLinearizability(t *testing.T) {
	f := s.setup(t, stressTimeout)
	if !f.linearizable() {
		t.Skipf("store declares %v consistency; linearizability is not promised (see Stress/Counters for the measured lost-update rate)", f.caps.Consistency)
	}
	const keys, clientsPerKey, handles = 4, 3, 3
	ops := s.scale(60, 120)
	stores := []backend.Store{f.store}
	for len(stores) < handles {
		stores = append(stores, f.open())
	}
	seed := uint64(time.Now().UnixNano())
	r := &linRecorder{}
	gate := make(chan struct{}) // released once every client is ready
	var wg sync.WaitGroup
	for k := range keys {
		key := fmt.Sprintf("lin%d", k)
		for c := range clientsPerKey {
			idx := k*clientsPerKey + c
			wg.Add(1)
			go func() {
				defer wg.Done()
				rng := rand.New(rand.NewPCG(seed, uint64(idx)))
				<-gate
				linClient(f.ctx, r, stores[idx%handles], key, idx, ops, rng)
			}()
		}
	}
	r.start = time.Now()
	close(gate)
	wg.Wait()

	unknown := 0
	for _, op := range r.ops {
		if op.Output.(linOutput).Unknown {
			unknown++
		}
	}
	checkTimeout := 30 * time.Second
	if dl, ok := f.ctx.Deadline(); ok {
		checkTimeout = min(checkTimeout, max(time.Until(dl)-time.Second, time.Second))
	}
	res, info := porcupine.CheckOperationsVerbose(linModel, r.ops, checkTimeout)
	t.Logf("checked %d operations on %d keys (%d of unknown outcome; seed %d): %s", len(r.ops), keys, unknown, seed, res)
	switch res {
	case porcupine.Ok:
	case porcupine.Unknown:
		t.Logf("the checker ran out of time after %v without finding a violation", checkTimeout)
	default:
		t.Errorf("the history of %d operations is not linearizable (seed %d); %s", len(r.ops), seed, writeVisualization(info))
	}
}

// writeVisualization writes porcupine's HTML view of a failed check to a
// directory that outlives the test and says where it is.
func writeVisualization(info porcupine.LinearizationInfo) string {
	dir, err := os.MkdirTemp("", "stickypub-linearizability-")
	if err != nil {
		return fmt.Sprintf("no visualisation: %v", err)
	}
	path := filepath.Join(dir, "history.html")
	if err := porcupine.VisualizePath(linModel, info, path); err != nil {
		return fmt.Sprintf("no visualisation: %v", err)
	}
	return "visualisation: " + path
}
