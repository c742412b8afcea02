package core

// EventKind names what happened; it maps the seed's event names to Go.
type EventKind int

// Event kinds.
const (
	// EventPublished: a Publish call completed (Seq set).
	EventPublished EventKind = iota + 1
	// EventBatchPublished: a PublishBatch call completed (Seq = first, Count).
	EventBatchPublished
	// EventSubscribed: a subscription record was written.
	EventSubscribed
	// EventUnsubscribed: a subscription was removed.
	EventUnsubscribed
	// EventRenewed: a subscription's TTL was extended.
	EventRenewed
	// EventMessage: a message was delivered on any topic (Message set).
	EventMessage
	// EventGap: messages of a publisher are missing (Gap set).
	EventGap
	// EventInvalid: a stored message or record failed verification and was
	// dropped (Err set).
	EventInvalid
	// EventPollUpdate: a poll delivered Count messages.
	EventPollUpdate
	// EventPollingStarted and EventPollingStopped: background polling.
	EventPollingStarted
	EventPollingStopped
	// EventPublishError, EventSubscribeError, EventPollError: Err set.
	EventPublishError
	EventSubscribeError
	EventPollError
)

var eventNames = map[EventKind]string{
	EventPublished: "published", EventBatchPublished: "batch-published",
	EventSubscribed: "subscribed", EventUnsubscribed: "unsubscribed", EventRenewed: "renewed",
	EventMessage: "message", EventGap: "gap", EventInvalid: "invalid",
	EventPollUpdate: "poll-update", EventPollingStarted: "polling-started", EventPollingStopped: "polling-stopped",
	EventPublishError: "publish-error", EventSubscribeError: "subscribe-error", EventPollError: "poll-error",
}

// String implements fmt.Stringer.
func (k EventKind) String() string {
	if s, ok := eventNames[k]; ok {
		return s
	}
	return "unknown"
}

// Event is passed to the handler set with WithEventHandler.
type Event struct {
	Kind    EventKind
	Topic   string
	Seq     uint64
	Count   int
	Message *Message
	Gap     *Gap
	Err     error
}

// Gap reports that messages From..To (inclusive) of a publisher on a topic
// could not be delivered: they are missing from the store or failed
// verification. A gap is never skipped silently.
type Gap struct {
	Topic     string
	Publisher PublisherID
	From, To  uint64
	Reason    string
}

func (c *Client) emit(ev Event) {
	if c.opts.onEvent != nil {
		c.opts.onEvent(ev)
	}
}
