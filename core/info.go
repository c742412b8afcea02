package core

// Info: what the coordinator records about a topic.

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"

	"github.com/stickypub/stickypub/backend"
)

// TopicInfo describes a topic as its coordinator records it.
type TopicInfo struct {
	// Topic is the topic's name.
	Topic string
	// Version of the coordinator (0: the topic has no coordinator yet).
	Version backend.Version
	// Announcements ever made (topic order; registrations in publisher
	// order).
	Announcements uint64
	// RetainedFrom is the first announcement retained (topic order).
	RetainedFrom uint64
	// Publishers with their highest announced sequence number.
	Publishers []PublisherInfo
	// Subscribers whose records have not expired.
	Subscribers []SubscriberInfo
	// RetainedMessages is how many messages a FromStart subscriber would
	// receive now: retained, readable and not expired (Info reads the
	// retained segments to count them; it does not verify signatures).
	RetainedMessages uint64
	// Expired counts retained messages whose TTL has passed; Unreadable
	// those of segments that are missing or damaged in the store.
	Expired, Unreadable uint64
	// Messages ever announced.
	Messages uint64
}

// PublisherInfo is one publisher of a topic.
type PublisherInfo struct {
	// ID identifies the publisher.
	ID PublisherID
	// LastSeq is its highest announced sequence number.
	LastSeq uint64
}

// SubscriberInfo is one live subscription of a topic.
type SubscriberInfo struct {
	// ID identifies the subscriber (its key's ID, or a durable
	// subscription's ID).
	ID PublisherID
	// Expires is when its record expires unless renewed.
	Expires time.Time
}

// Info reads the topic's coordinator.
func (c *Client) Info(ctx context.Context, topic string) (TopicInfo, error) {
	if err := checkTopic(topic); err != nil {
		return TopicInfo{}, err
	}
	tk := newTopicKeys(topic)
	var (
		st    *coordState
		v     backend.Version
		heads map[PublisherID]uint64
	)
	read := func() (err error) {
		if st, v, err = c.eng.readCoord(ctx, tk); err != nil {
			return err
		}
		heads, err = c.eng.registered(ctx, tk, st)
		return err
	}
	err := retryIO(ctx, read)
	for attempt := 0; errors.Is(err, backend.ErrNotFound) && attempt < 5; attempt++ {
		err = retryIO(ctx, read) // a blob of an older coordinator was reclaimed meanwhile
	}
	if err != nil {
		return TopicInfo{}, err
	}
	base := map[PublisherID]uint64{}
	var recs map[PublisherID]*headRecord
	if !c.eng.ordered {
		// The coordinator only registers publishers: their head records
		// say how far each log reaches and what it retains.
		pids := slices.SortedFunc(maps.Keys(heads), comparePID)
		hrs, _ := c.eng.readHeads(ctx, tk, pids)
		recs = map[PublisherID]*headRecord{}
		for i, h := range hrs {
			if h != nil {
				recs[pids[i]] = h
				heads[pids[i]] = max(heads[pids[i]], h.Last)
				base[pids[i]] = h.Base - 1
			}
		}
	}
	info := TopicInfo{Topic: topic, Version: v, Announcements: st.Count, RetainedFrom: st.RetainFrom}
	for _, p := range slices.SortedFunc(maps.Keys(heads), comparePID) {
		h := heads[p]
		info.Publishers = append(info.Publishers, PublisherInfo{ID: p, LastSeq: h})
		info.Messages += h
	}
	n, err := c.countRetained(ctx, tk, st, base, heads, recs)
	if err != nil {
		return TopicInfo{}, err
	}
	info.RetainedMessages, info.Expired, info.Unreadable = n.live, n.expired, n.unreadable
	now := c.eng.now().UnixNano()
	for _, p := range slices.SortedFunc(maps.Keys(st.Subs), comparePID) {
		if exp := st.Subs[p]; exp >= now {
			info.Subscribers = append(info.Subscribers, SubscriberInfo{ID: p, Expires: time.Unix(0, exp)})
		}
	}
	return info, nil
}
