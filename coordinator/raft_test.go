package coordinator

import (
	"fmt"
	"net"
	"strings"
	"testing"
)

// freePort returns a TCP port free on 127.0.0.1 at the time of the call.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// TestRaftAdvertiseKeepsNames checks that a DNS name given as the Raft
// advertise address is what the Raft configuration records (so peers
// resolve it at every dial and follow a server to a new IP), and that a
// cluster forms through such names.
func TestRaftAdvertiseKeepsNames(t *testing.T) {
	ports := map[string]int{}
	c := newCluster(t, 2, func(cfg *Config) {
		p := freePort(t)
		ports[cfg.NodeID] = p
		cfg.RaftAddr = fmt.Sprintf("127.0.0.1:%d", p)
		cfg.RaftAdvertise = fmt.Sprintf("localhost:%d", p)
	})
	l := c.leader(nil)
	st, err := l.srv.Status()
	if err != nil {
		t.Fatal(err)
	}
	if len(st.Voters) != 2 {
		t.Fatalf("%d voters, want 2", len(st.Voters))
	}
	for _, v := range st.Voters {
		if want := fmt.Sprintf("localhost:%d", ports[v.ID]); v.RaftAddr != want {
			t.Errorf("voter %s recorded at %q, want the name %q", v.ID, v.RaftAddr, want)
		}
	}
}

func TestCheckAdvertise(t *testing.T) {
	for _, tc := range []struct {
		addr, err string
	}{
		{"c3:7420", ""},
		{"10.0.0.7:7420", ""},
		{"c3", "missing port"},
		{"c3:http", "not a number"},
		{"c3:0", "not a number"},
		{":7420", "cannot be dialled"},
		{"0.0.0.0:7420", "cannot be dialled"},
		{"[::]:7420", "cannot be dialled"},
	} {
		err := checkAdvertise(tc.addr)
		if tc.err == "" && err != nil || tc.err != "" && (err == nil || !strings.Contains(err.Error(), tc.err)) {
			t.Errorf("checkAdvertise(%q) = %v, want an error containing %q", tc.addr, err, tc.err)
		}
	}
}
