package backend

// Offer puts v into ch without blocking, replacing an unread older value:
// the coalescing send that Watcher implementations use, so that a slow
// receiver holds the newest notification and a writer never waits. ch must
// have a buffer of at least one, and v should come from a single sender
// per channel (a dispatcher), so the slot is not refilled between steps.
func Offer(ch chan Version, v Version) {
	select {
	case ch <- v:
		return
	default:
	}
	select {
	case <-ch:
	default:
	}
	select {
	case ch <- v:
	default:
	}
}
