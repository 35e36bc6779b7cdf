package membership

import (
	"slices"
	"testing"
	"time"
)

func TestLease(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	at := func(s int) time.Time { return t0.Add(time.Duration(s) * time.Second) }
	type step struct {
		renew  map[string]int // worker -> second
		forget []string
		check  int      // second at which Expired is called
		want   []string // expired then
	}
	tests := []struct {
		name  string
		steps []step
	}{
		{
			name: "expires exactly at ttl",
			steps: []step{
				{renew: map[string]int{"w1": 0}, check: 9, want: nil},
				{check: 10, want: []string{"w1"}},
			},
		},
		{
			name: "renewal extends the lease",
			steps: []step{
				{renew: map[string]int{"w1": 0, "w2": 0}, check: 5},
				{renew: map[string]int{"w1": 5}, check: 12, want: []string{"w2"}},
				{check: 15, want: []string{"w1", "w2"}},
			},
		},
		{
			name: "stale renewal is ignored",
			steps: []step{
				{renew: map[string]int{"w1": 8}, check: 8},
				{renew: map[string]int{"w1": 2}, check: 17},
				{check: 18, want: []string{"w1"}},
			},
		},
		{
			name: "expired stays reported until forgotten or renewed",
			steps: []step{
				{renew: map[string]int{"w1": 0, "w2": 0}, check: 10, want: []string{"w1", "w2"}},
				{check: 11, want: []string{"w1", "w2"}},
				{forget: []string{"w1"}, renew: map[string]int{"w2": 11}, check: 12},
			},
		},
		{
			name:  "nothing tracked",
			steps: []step{{check: 100}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			l := NewLease(10 * time.Second)
			for i, s := range tt.steps {
				for id, sec := range s.renew {
					l.Renew(id, at(sec))
				}
				for _, id := range s.forget {
					l.Forget(id)
				}
				if got := l.Expired(at(s.check)); !slices.Equal(got, s.want) {
					t.Fatalf("step %d: Expired(%ds) = %v, want %v", i, s.check, got, s.want)
				}
			}
		})
	}
}

func TestLeaseNextExpiryAndRenewAlive(t *testing.T) {
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	l := NewLease(time.Minute)
	if _, ok := l.NextExpiry(); ok {
		t.Fatal("NextExpiry on an empty lease reported a time")
	}
	worker := NodeMeta{Role: RoleWorker, Cores: 4}
	l.RenewAlive([]Node{
		{Name: "w-alive", State: StateAlive, Meta: worker},
		{Name: "w-failed", State: StateFailed, Meta: worker},
		{Name: "coord", State: StateAlive, Meta: NodeMeta{Role: RoleCoordinator}},
		{Name: "foreign", State: StateAlive, MetaErr: ErrInvalidMeta},
	}, t0)
	l.Renew("w-old", t0.Add(-30*time.Second))
	next, ok := l.NextExpiry()
	if !ok || !next.Equal(t0.Add(30*time.Second)) {
		t.Fatalf("NextExpiry = %v, %v; want %v", next, ok, t0.Add(30*time.Second))
	}
	if got, want := l.Expired(t0.Add(time.Minute)), []string{"w-alive", "w-old"}; !slices.Equal(got, want) {
		t.Fatalf("Expired = %v, want %v (only alive workers are renewed)", got, want)
	}
}
