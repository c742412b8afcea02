package core

// Checking many segment signatures at once: the segments one poll has in
// hand, typically one small segment from each of many publishers, are
// verified with one batch equation (internal/edbatch) instead of one
// Ed25519 verification each.

import (
	"crypto/ed25519"
	"runtime"
	"sync"

	"github.com/stickypub/stickypub/internal/edbatch"
)

// segSigOK reports whether sig is pub's signature over signed, a
// segment's (or a proof's) signed bytes. Single and batch checks accept
// exactly the same signatures (edbatch's rule: RFC 8032's cofactored
// equation with crypto/ed25519's encoding checks), so whether a segment
// is delivered never depends on which segments it was verified with.
func segSigOK(pub ed25519.PublicKey, signed, sig []byte) bool {
	return edbatch.Verify(pub, signed, sig)
}

// sigCheck is one signature to check: pub's signature sig over signed.
type sigCheck struct {
	pub    ed25519.PublicKey
	signed []byte
	sig    []byte
}

// minBatchPerWorker is the fewest signatures a goroutine of verifySigs
// checks: below it, splitting across cores loses more of the batch's
// saving than it gains.
const minBatchPerWorker = 16

// verifySigs reports, for each check, whether its signature is valid, as
// segSigOK would. The checks are verified as one batch (split across up
// to GOMAXPROCS goroutines when there are many); a batch that fails is
// bisected down to single signatures, so only the bad ones are rejected.
func verifySigs(checks []sigCheck) []bool {
	ok := make([]bool, len(checks))
	one := func(from, to int) {
		var b edbatch.Batch
		for _, c := range checks[from:to] {
			b.Add(c.pub, c.signed, c.sig)
		}
		copy(ok[from:to], b.VerifyEach())
	}
	workers := min(runtime.GOMAXPROCS(0), len(checks)/minBatchPerWorker)
	if workers <= 1 {
		one(0, len(checks))
		return ok
	}
	var wg sync.WaitGroup
	for w := range workers {
		from, to := w*len(checks)/workers, (w+1)*len(checks)/workers
		wg.Go(func() { one(from, to) })
	}
	wg.Wait()
	return ok
}

// verifyPrepared checks the signatures of the prepared segments ps (nil
// entries are skipped) together, and returns each one's messages, or nil
// for a segment that is nil or does not verify.
func verifyPrepared(ps []*segPrep) [][]*Message {
	checks := make([]sigCheck, 0, len(ps))
	at := make([]int, 0, len(ps))
	for i, p := range ps {
		if p != nil {
			checks = append(checks, sigCheck{p.seg.Publisher, p.signed, p.seg.Sig})
			at = append(at, i)
		}
	}
	out := make([][]*Message, len(ps))
	for j, good := range verifySigs(checks) {
		if good {
			out[at[j]] = ps[at[j]].messages()
		}
	}
	return out
}
