//go:build unix

package collective

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestHelperRank is rank 2 of TestSIGSTOPPedPeer's ring, run in a child
// process: it prints its address, reads the others' and all-reduces until
// it is stopped or killed.
func TestHelperRank(t *testing.T) {
	if os.Getenv("TRAINCTL_COLLECTIVE_CHILD") == "" {
		t.Skip("helper process of TestSIGSTOPPedPeer")
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println(ln.Addr().String())
	line, err := bufio.NewReader(os.Stdin).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	peers := strings.Fields(line)
	c, err := New(context.Background(), Config{Rank: 2, Size: 3, Peers: peers, Listener: ln, Secret: testSecret,
		Session: "job/attempt-1", Timeout: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	for i := 0; ; i++ {
		if err := c.AllReduceInt64(context.Background(), Tag{Step: int64(i)}, make([]int64, 1000), Sum); err != nil {
			t.Fatal(err)
		}
	}
}

// TestSIGSTOPPedPeer stops (SIGSTOP) a rank running in another process in
// the middle of a stream of all-reduces: the other ranks fail within the
// deadline, naming it.
func TestSIGSTOPPedPeer(t *testing.T) {
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperRank$", "-test.count=1")
	cmd.Env = append(os.Environ(), "TRAINCTL_COLLECTIVE_CHILD=1")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cmd.Process.Signal(syscall.SIGCONT)
		cmd.Process.Kill()
		cmd.Wait()
	}()
	childAddr, err := bufio.NewReader(stdout).ReadString('\n')
	if err != nil {
		t.Fatal(err)
	}
	lns, addrs := listeners(t, 2)
	peers := append(addrs, strings.TrimSpace(childAddr))
	fmt.Fprintln(stdin, strings.Join(peers, " "))
	const timeout = 2 * time.Second
	comms := make([]*Comm, 2)
	errs := onEvery(comms, func(r int, _ *Comm) error {
		var err error
		comms[r], err = New(context.Background(), Config{Rank: r, Size: 3, Peers: peers, Listener: lns[r], Secret: testSecret,
			Session: "job/attempt-1", Timeout: timeout, ConnectTimeout: 30 * time.Second})
		return err
	})
	for r, err := range errs {
		if err != nil {
			t.Fatalf("rank %d: %v", r, err)
		}
		defer comms[r].Close()
	}
	var stoppedAt time.Time
	errs = onEvery(comms, func(r int, c *Comm) error {
		for i := 0; ; i++ {
			if r == 0 && i == 50 {
				stoppedAt = time.Now()
				cmd.Process.Signal(syscall.SIGSTOP)
			}
			if err := c.AllReduceInt64(context.Background(), Tag{Step: int64(i)}, make([]int64, 1000), Sum); err != nil {
				return err
			}
		}
	})
	took := time.Since(stoppedAt)
	for r, err := range errs {
		var re *RankError
		if !errors.As(err, &re) || re.Rank != 2 || !errors.Is(err, ErrTimeout) {
			t.Fatalf("rank %d: %v; want a timeout naming rank 2", r, err)
		}
		t.Logf("rank %d: %v", r, err)
	}
	if took > timeout+2*time.Second {
		t.Fatalf("failed %v after the SIGSTOP; deadline %v", took, timeout)
	}
	t.Logf("both ranks failed %v after the SIGSTOP (deadline %v)", took.Round(time.Millisecond), timeout)
}
