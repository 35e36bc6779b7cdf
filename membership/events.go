package membership

import (
	"log/slog"
	"sync"
)

// eventQueue decouples memberlist's callbacks, which must not block, from
// the consumer of Member.Events: push appends to an unbounded queue and a
// pump goroutine hands events to the out channel one at a time.
type eventQueue struct {
	log *slog.Logger
	out chan Event

	mu     sync.Mutex
	items  []Event
	closed bool
	warnAt int // backlog that triggers the next warning; 0 never warns

	wake chan struct{} // capacity 1: "items may be non-empty"
	stop chan struct{} // closed by close
	done chan struct{} // closed when the pump exits
}

func newEventQueue(log *slog.Logger, warnAt int) *eventQueue {
	q := &eventQueue{
		log:    log,
		out:    make(chan Event),
		warnAt: max(warnAt, 0),
		wake:   make(chan struct{}, 1),
		stop:   make(chan struct{}),
		done:   make(chan struct{}),
	}
	go q.pump()
	return q
}

// push queues e without blocking.
func (q *eventQueue) push(e Event) {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		q.log.Warn("membership event after shutdown discarded", "event", e.Type.String(), "member", e.Node.Name)
		return
	}
	q.items = append(q.items, e)
	backlog := len(q.items)
	warn := q.warnAt > 0 && backlog >= q.warnAt
	if warn {
		q.warnAt *= 2
	}
	q.mu.Unlock()
	if warn {
		q.log.Warn("membership events are not being consumed", "backlog", backlog)
	}
	select {
	case q.wake <- struct{}{}:
	default:
	}
}

// pump delivers queued events in order until close.
func (q *eventQueue) pump() {
	defer close(q.done)
	for {
		q.mu.Lock()
		if len(q.items) == 0 {
			q.mu.Unlock()
			select {
			case <-q.wake:
				continue
			case <-q.stop:
				return
			}
		}
		e := q.items[0]
		q.mu.Unlock()
		select {
		case q.out <- e:
			q.mu.Lock()
			q.items[0] = Event{}
			q.items = q.items[1:]
			if len(q.items) == 0 {
				q.items = nil
			}
			q.mu.Unlock()
		case <-q.stop:
			return
		}
	}
}

// close stops delivery, closes out and logs how many events were left
// undelivered. Safe to call more than once.
func (q *eventQueue) close() {
	q.mu.Lock()
	if q.closed {
		q.mu.Unlock()
		return
	}
	q.closed = true
	q.mu.Unlock()
	close(q.stop)
	<-q.done
	q.mu.Lock()
	left := len(q.items)
	q.items = nil
	q.mu.Unlock()
	close(q.out)
	if left > 0 {
		q.log.Warn("membership events undelivered at shutdown discarded", "count", left)
	}
}
