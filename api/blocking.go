package api

import (
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// IndexHeader is the response header of every blocking-capable GET: the
// index of the state it answered from. Pass it back as QueryOptions.WaitIndex
// to wait for the next change.
const IndexHeader = "X-Trainctl-Index"

// Limits of a blocking query's wait.
const (
	// DefaultBlockingWait is the wait of a query that gives an index but no
	// wait.
	DefaultBlockingWait = 5 * time.Minute
	// MaxBlockingWait bounds the wait; longer waits are cut to it.
	MaxBlockingWait = 10 * time.Minute
)

// QueryOptions make a GET a blocking query: it answers once the state it
// reads has changed past WaitIndex, or after WaitTime.
type QueryOptions struct {
	// WaitIndex is the index of the last answer seen (its IndexHeader);
	// 0 answers at once.
	WaitIndex uint64
	// WaitTime bounds the wait (DefaultBlockingWait when zero; at most
	// MaxBlockingWait).
	WaitTime time.Duration
}

// Values returns the query parameters ("index", "wait") of o.
func (o QueryOptions) Values() url.Values {
	v := url.Values{}
	if o.WaitIndex > 0 {
		v.Set("index", strconv.FormatUint(o.WaitIndex, 10))
	}
	if o.WaitTime > 0 {
		v.Set("wait", o.WaitTime.String())
	}
	return v
}

// ParseQueryOptions reads "index" (a non-negative integer) and "wait" (a
// Go duration such as 30s, or a number of seconds) from query parameters;
// a wait over MaxBlockingWait is cut to it, and a missing one is
// DefaultBlockingWait.
func ParseQueryOptions(q url.Values) (QueryOptions, error) {
	o := QueryOptions{WaitTime: DefaultBlockingWait}
	if v := q.Get("index"); v != "" {
		n, err := strconv.ParseUint(v, 10, 64)
		if err != nil {
			return o, fmt.Errorf("index: %q is not a non-negative integer", Truncate(v, 64))
		}
		o.WaitIndex = n
	}
	if v := q.Get("wait"); v != "" {
		d, err := parseWait(v)
		if err != nil {
			return o, fmt.Errorf("wait: %w", err)
		}
		o.WaitTime = min(d, MaxBlockingWait)
	}
	return o, nil
}

func parseWait(v string) (time.Duration, error) {
	if n, err := strconv.ParseUint(v, 10, 32); err == nil {
		return time.Duration(n) * time.Second, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("%q is not a duration such as 30s", Truncate(v, 64))
	}
	if d < 0 {
		return 0, errors.New("negative")
	}
	return d, nil
}
