package coordinator

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"
)

// rateBody paces a request body through the connection's read deadline:
// having read n bytes, the next must arrive before start + grace +
// n/minRate seconds. A body that falls behind fails to read with a timeout
// (the handler answers its error and the server closes the connection),
// so a slow or stalled client gives its in-flight slot back. Once the body
// has been read to its end the deadline is cleared, so it bounds the body
// and not the handler's work after it (a deadline passing then would
// cancel the request's context).
type rateBody struct {
	io.ReadCloser
	rc      *http.ResponseController
	start   time.Time
	grace   time.Duration
	minRate int64
	read    int64
	done    bool
}

// newRateBody wraps body, the body of the request w answers, in a
// rateBody. Where w's connection has no read deadline (it is no net.Conn)
// the body is returned as it is.
func newRateBody(w http.ResponseWriter, body io.ReadCloser, grace time.Duration, minRate int64) io.ReadCloser {
	b := &rateBody{ReadCloser: body, rc: http.NewResponseController(w), start: time.Now(), grace: grace, minRate: minRate}
	if err := b.rc.SetReadDeadline(b.deadline()); err != nil {
		return body
	}
	return b
}

// deadline is when the next byte must have arrived.
func (b *rateBody) deadline() time.Time {
	return b.start.Add(b.grace + time.Duration(float64(b.read)/float64(b.minRate)*float64(time.Second)))
}

// Read implements io.Reader.
func (b *rateBody) Read(p []byte) (int, error) {
	n, err := b.ReadCloser.Read(p)
	if b.done {
		return n, err
	}
	b.read += int64(n)
	if err != nil {
		b.done = true
		if errors.Is(err, io.EOF) {
			_ = b.rc.SetReadDeadline(time.Time{})
		}
		// Otherwise the deadline stays: the server, after the
		// handler, discards what is left of a body it did not read,
		// and must not wait for it without end.
		if isTimeout(err) {
			err = fmt.Errorf("the body came slower than %d bytes/s after %s (%d bytes in %s): %w",
				b.minRate, b.grace, b.read, time.Since(b.start).Round(time.Millisecond), err)
		}
		return n, err
	}
	if n > 0 {
		_ = b.rc.SetReadDeadline(b.deadline())
	}
	return n, nil
}

// isTimeout reports whether err is a network timeout.
func isTimeout(err error) bool {
	var te interface{ Timeout() bool }
	return errors.As(err, &te) && te.Timeout()
}
