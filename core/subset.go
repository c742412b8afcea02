package core

// The set of a client's subscriptions, by topic.

// subSet holds a client's subscriptions by topic: the first inline and a
// map only from the second on, since many clients follow one topic (a Go
// map holding one entry costs ~250 bytes, which an idle subscription
// would otherwise carry). Guarded by the client's mu.
type subSet struct {
	one  *Subscription            // nil, or the subscription not in more
	more map[string]*Subscription // the others (nil until a second)
}

// get returns the subscription to topic, if any.
func (m *subSet) get(topic string) (*Subscription, bool) {
	if m.one != nil && m.one.tk.name == topic {
		return m.one, true
	}
	s, ok := m.more[topic]
	return s, ok
}

// add adds s (the caller checked that its topic has none).
func (m *subSet) add(s *Subscription) {
	if m.one == nil {
		m.one = s
		return
	}
	put(&m.more, s.tk.name, s)
}

// remove removes s if it is its topic's subscription.
func (m *subSet) remove(s *Subscription) {
	if m.one == s {
		m.one = nil
		return
	}
	if m.more[s.tk.name] == s {
		delete(m.more, s.tk.name)
	}
}

// len returns how many subscriptions there are.
func (m *subSet) len() int {
	n := len(m.more)
	if m.one != nil {
		n++
	}
	return n
}

// list returns the subscriptions.
func (m *subSet) list() []*Subscription {
	out := make([]*Subscription, 0, m.len())
	if m.one != nil {
		out = append(out, m.one)
	}
	for _, s := range m.more {
		out = append(out, s)
	}
	return out
}
