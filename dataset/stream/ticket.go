package stream

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"

	"github.com/trainctl/trainctl/dataset"
)

// ErrTicket is returned (wrapped) for a ticket that cannot be parsed or
// names an impossible request. The server answers it with InvalidArgument.
var ErrTicket = errors.New("invalid ticket")

// Ticket is the JSON body of a Flight DoGet ticket.
//
// A shard ticket (Whole false) asks for shard Shard of NumShards of split
// Split of version Version, in the order of epoch Epoch under Seed, from
// Offset (within that shard's order) to the end of the epoch: exactly what a
// dataset.Reader with the same parameters yields from Position{Epoch,
// Offset}. A whole ticket (Whole true) asks for every row of the version in
// file order; the shard fields must then be zero.
type Ticket struct {
	Version   string `json:"version"`
	Whole     bool   `json:"whole,omitempty"`
	Split     string `json:"split,omitempty"`
	Shard     int    `json:"shard"`
	NumShards int    `json:"num_shards"`
	Epoch     int    `json:"epoch"`
	Seed      uint64 `json:"seed"`
	Offset    int    `json:"offset"`
}

// WholeTicket is the ticket for the whole version id in file order.
func WholeTicket(id string) Ticket { return Ticket{Version: id, Whole: true} }

// Position is where the first example of this ticket's stream sits in the
// shard's epoch order.
func (t Ticket) Position() dataset.Position {
	return dataset.Position{Epoch: t.Epoch, Offset: t.Offset}
}

// Validate checks the fields that do not need the version itself: shard
// ranges against the split's size are checked by the server.
func (t Ticket) Validate() error {
	if t.Version == "" {
		return fmt.Errorf("%w: no version", ErrTicket)
	}
	if t.Whole {
		if t.Split != "" || t.Shard != 0 || t.NumShards != 0 || t.Epoch != 0 || t.Seed != 0 || t.Offset != 0 {
			return fmt.Errorf("%w: a whole-version ticket takes no split, shard, epoch, seed or offset", ErrTicket)
		}
		return nil
	}
	switch {
	case t.Split != dataset.SplitTrain && t.Split != dataset.SplitVal:
		return fmt.Errorf("%w: split %q (want %q or %q)", ErrTicket, t.Split, dataset.SplitTrain, dataset.SplitVal)
	case t.NumShards < 1:
		return fmt.Errorf("%w: num_shards %d (want at least 1)", ErrTicket, t.NumShards)
	case t.Shard < 0 || t.Shard >= t.NumShards:
		return fmt.Errorf("%w: shard %d of %d (want 0..%d)", ErrTicket, t.Shard, t.NumShards, t.NumShards-1)
	case t.Epoch < 0:
		return fmt.Errorf("%w: epoch %d is negative", ErrTicket, t.Epoch)
	case t.Offset < 0:
		return fmt.Errorf("%w: offset %d is negative", ErrTicket, t.Offset)
	}
	return nil
}

// Encode returns the ticket's wire form.
func (t Ticket) Encode() ([]byte, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	return json.Marshal(t)
}

// DecodeTicket parses and validates a ticket. Unknown fields and trailing
// data are rejected, so a typo in a hand-written ticket is an error rather
// than a silently different stream.
func DecodeTicket(b []byte) (Ticket, error) {
	var t Ticket
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&t); err != nil {
		return Ticket{}, fmt.Errorf("%w: %q: %v", ErrTicket, truncate(b, 200), err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return Ticket{}, fmt.Errorf("%w: trailing data after the JSON object", ErrTicket)
	}
	if err := t.Validate(); err != nil {
		return Ticket{}, err
	}
	return t, nil
}

func truncate(b []byte, n int) string {
	if len(b) <= n {
		return string(b)
	}
	return string(b[:n]) + "..."
}
