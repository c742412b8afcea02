package core

// EventKind names what happened to a client: a message published or
// delivered, a gap, an invalid record, an error, polling started or
// stopped.
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
	// Kind says what happened; it decides which other fields are set.
	Kind EventKind
	// Topic is the topic concerned ("" for client-wide events such as
	// polling started or stopped).
	Topic string
	// Seq is the sequence number concerned (a published or delivered
	// message), when there is one.
	Seq uint64
	// Count is how many messages the event covers (a poll that delivered
	// several, a batch).
	Count int
	// Message is the delivered message (EventMessage).
	Message *Message
	// Gap is the reported gap (EventGap).
	Gap *Gap
	// Err is the error of a failure event (publish, poll, invalid record).
	Err error
}

// Gap reports that messages From..To (inclusive) of a publisher on a topic
// could not be delivered: they are missing from the store or failed
// verification. A gap is never skipped silently.
type Gap struct {
	// Topic is the topic of the missing messages.
	Topic string
	// Publisher is the publisher whose messages are missing.
	Publisher PublisherID
	// From and To are the first and last missing sequence numbers.
	From, To uint64
	// Reason says why, e.g. "dropped by retention before delivery" or
	// "segment missing from the store".
	Reason string
}

func (c *Client) emit(ev Event) {
	if c.opts.onEvent != nil {
		c.opts.onEvent(ev)
	}
}
