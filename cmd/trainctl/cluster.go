package main

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/api"
	"github.com/trainctl/trainctl/coordinator"
)

// This file holds what every command that talks to a cluster shares (the
// --coordinator and --timeout flags, the client, friendly API errors) and
// `trainctl cluster status`. Owned by the cluster CLI work.

const (
	flagCoordinator = "coordinator"
	flagTimeout     = "timeout"
)

// defaultCoordinatorAddr is where `trainctl up` and a default
// `trainctl coordinator` serve the API.
func defaultCoordinatorAddr() string { return coordinator.DefaultConfig().HTTPAddr }

// clusterFlags are the flags of every command that talks to a coordinator.
func clusterFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    flagCoordinator,
			Usage:   "coordinator HTTP API `ADDR[,ADDR...]` (host:port or URL); any voter will do",
			EnvVars: []string{"TRAINCTL_COORDINATOR"},
			Value:   defaultCoordinatorAddr(),
		},
		&cli.DurationFlag{
			Name:  flagTimeout,
			Usage: "keep retrying unreachable coordinators or a leaderless cluster for this `DURATION`",
			Value: api.DefaultConfig().RetryTimeout,
		},
	}
}

// globalFlagHint is the OnUsageError of the cluster commands: a global flag
// (-o, --data-dir) given after the command gets a message saying where it
// goes.
func globalFlagHint(c *cli.Context, err error, _ bool) error {
	name := strings.TrimPrefix(c.Command.HelpName, c.App.Name+" ")
	msg := err.Error()
	for _, f := range []struct{ name, example string }{
		{"o", "-o json"}, {"output", "-o json"}, {"data-dir", "--data-dir DIR"},
	} {
		if strings.HasSuffix(msg, "flag provided but not defined: -"+f.name) {
			return fmt.Errorf("%s: -%s is a global flag: put it before the command, as in `trainctl %s %s ...`", name, f.name, f.example, name)
		}
	}
	return fmt.Errorf("%s: %w (see --help)", name, err)
}

// withClusterFlags returns flags followed by the cluster flags.
func withClusterFlags(flags ...cli.Flag) []cli.Flag { return append(flags, clusterFlags()...) }

// coordinatorAddrs returns the --coordinator addresses, checked.
func coordinatorAddrs(c *cli.Context) ([]string, error) {
	raw := c.String(flagCoordinator)
	if strings.TrimSpace(raw) == "" { // TRAINCTL_COORDINATOR= (set but empty)
		raw = defaultCoordinatorAddr()
	}
	addrs, err := splitAddrs(raw)
	if err != nil {
		return nil, fmt.Errorf("--coordinator %q: %w", raw, err)
	}
	for _, a := range addrs {
		if err := checkClientAddr(a); err != nil {
			return nil, fmt.Errorf("--coordinator %q: %w", raw, err)
		}
	}
	return addrs, nil
}

// splitAddrs splits a comma-separated address list, dropping blanks.
func splitAddrs(s string) ([]string, error) {
	var out []string
	for _, a := range strings.Split(s, ",") {
		if a = strings.TrimSpace(a); a != "" {
			out = append(out, a)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no address given (want host:port[,host:port...])")
	}
	return out, nil
}

// checkClientAddr checks an address a client dials: host:port, or an
// http(s) URL.
func checkClientAddr(a string) error {
	if strings.Contains(a, "://") {
		u, err := url.Parse(a)
		if err != nil {
			return fmt.Errorf("%q is not a URL: %w", a, err)
		}
		if u.Scheme != "http" && u.Scheme != "https" {
			return fmt.Errorf("%q: scheme %q, want http or https", a, u.Scheme)
		}
		if u.Host == "" {
			return fmt.Errorf("%q: no host", a)
		}
		return nil
	}
	host, _, err := splitHostPort(a)
	if err != nil {
		return err
	}
	if host == "" {
		return fmt.Errorf("%q: no host (want host:port, like %s)", a, defaultCoordinatorAddr())
	}
	return nil
}

// splitHostPort splits host:port and checks the port is a number in
// 0..65535, with a message that shows the expected form.
func splitHostPort(a string) (host string, port int, err error) {
	host, p, err := net.SplitHostPort(a)
	if err != nil {
		return "", 0, fmt.Errorf("%q is not host:port (like 127.0.0.1:7421): %w", a, err)
	}
	port, err = strconv.Atoi(p)
	if err != nil || port < 0 || port > 65535 {
		return "", 0, fmt.Errorf("%q: port %q is not a number in 0..65535", a, p)
	}
	return host, port, nil
}

// clusterSetup is the start of every command that asks the cluster and
// prints the answer: its printer (-o) and a client of --coordinator.
func clusterSetup(c *cli.Context) (*printer, *api.Client, error) {
	p, err := newPrinter(c)
	if err != nil {
		return nil, nil, err
	}
	cl, err := newClusterClient(c)
	if err != nil {
		return nil, nil, err
	}
	return p, cl, nil
}

// stateFlag reads a listing's --state filter: one of states (any case), or
// "" when the flag is not given. cmd names the command in the error.
func stateFlag[S ~string](c *cli.Context, cmd string, states []S) (S, error) {
	state := S(strings.ToLower(c.String("state")))
	if state == "" || slices.Contains(states, state) {
		return state, nil
	}
	names := make([]string, len(states))
	for i, s := range states {
		names[i] = string(s)
	}
	return "", fmt.Errorf("%s: --state %q: want one of %s", cmd, c.String("state"), strings.Join(names, ", "))
}

// newClusterClient returns a client of the --coordinator addresses that
// retries for --timeout.
func newClusterClient(c *cli.Context) (*api.Client, error) {
	addrs, err := coordinatorAddrs(c)
	if err != nil {
		return nil, err
	}
	if d := c.Duration(flagTimeout); d < 0 {
		return nil, fmt.Errorf("--timeout %v: must not be negative", d)
	}
	cfg := api.DefaultConfig(addrs...)
	cfg.RetryTimeout = c.Duration(flagTimeout)
	return api.NewWithConfig(cfg), nil
}

// clusterError turns an error of the coordinator client into one that says
// what went wrong and what to do. what names the object asked about
// (`job "3f2a..."`) for a not-found answer, and hint says where to find the
// right one; both may be empty.
func clusterError(c *cli.Context, err error, what, hint string) error {
	if err == nil {
		return nil
	}
	var apiErr *api.APIError
	switch {
	case errors.Is(err, api.ErrNotFound) && what != "":
		msg := fmt.Sprintf("no %s in the cluster at %s", what, c.String(flagCoordinator))
		if hint != "" {
			msg += " (" + hint + ")"
		}
		return errors.New(msg)
	case errors.Is(err, api.ErrNoLeader), errors.Is(err, api.ErrNotLeader):
		return fmt.Errorf("the cluster at %s has no leader (an election is running, or a majority of coordinators is down); try again, or check `trainctl cluster status`: %w",
			c.String(flagCoordinator), err)
	case errors.As(err, &apiErr):
		return err
	case c.Context.Err() != nil:
		return fmt.Errorf("interrupted: %w", err)
	}
	return fmt.Errorf("cannot reach a coordinator at %s: %w\n"+
		"Is one running? Start one with `trainctl coordinator --bootstrap`, or point --coordinator (or TRAINCTL_COORDINATOR) at a running one",
		c.String(flagCoordinator), err)
}

// clusterCommand is `trainctl cluster`.
func clusterCommand() *cli.Command {
	return &cli.Command{
		Name:  "cluster",
		Usage: "inspect the coordinator cluster (Raft voters, leader, indexes)",
		Description: "Example:\n" +
			"  trainctl cluster status\n" +
			"  trainctl -o json cluster status --coordinator 10.0.0.1:7421,10.0.0.2:7421",
		Subcommands: []*cli.Command{clusterStatusCommand()},
	}
}

func clusterStatusCommand() *cli.Command {
	return &cli.Command{
		Name:         "status",
		Usage:        "show the Raft voters, the leader, the term and the log indexes",
		ArgsUsage:    " ",
		OnUsageError: globalFlagHint,
		Description: "Asks one coordinator (the first of --coordinator that answers) for its view of the\n" +
			"cluster: its own Raft state, the leader, the current term, its last, commit and applied\n" +
			"log indexes, and every voter with its Raft and HTTP addresses. A follower's view may\n" +
			"lag the leader's slightly; a coordinator cut off from the majority shows no leader.\n\n" +
			"Example:\n" +
			"  trainctl cluster status\n" +
			"  trainctl -o json cluster status",
		Flags: clusterFlags(),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			st, err := cl.Status(c.Context)
			if err != nil {
				return clusterError(c, err, "", "")
			}
			if p.JSON() {
				return p.Value(st)
			}
			w := c.App.Writer
			leader := "none known (election running, or cut off from the majority)"
			if st.LeaderID != "" {
				leader = st.LeaderID
				if st.LeaderHTTPAddr != "" {
					leader += " (http " + st.LeaderHTTPAddr + ")"
				}
			}
			fmt.Fprintf(w, "answered by  %s (%s)\n", st.NodeID, st.State)
			fmt.Fprintf(w, "leader       %s\n", leader)
			fmt.Fprintf(w, "term         %d\n", st.Term)
			fmt.Fprintf(w, "index        last %d, commit %d, applied %d (state %d)\n", st.LastIndex, st.CommitIndex, st.AppliedIndex, st.StateIndex)
			fmt.Fprintf(w, "voters       %d\n\n", countVoters(st.Voters))
			rows := make([][]string, len(st.Voters))
			for i, v := range st.Voters {
				role := "follower"
				if v.Leader {
					role = "leader"
				}
				rows[i] = []string{v.ID, role, v.Suffrage, v.RaftAddr, orDash(v.HTTPAddr)}
			}
			return p.Table([]string{"ID", "ROLE", "SUFFRAGE", "RAFT", "HTTP"}, rows)
		},
	}
}

func countVoters(vs []api.VoterInfo) int {
	n := 0
	for _, v := range vs {
		if v.Suffrage == "Voter" {
			n++
		}
	}
	return n
}

// orDash returns s, or "-" when it is empty.
func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// age formats how long ago t was, for tables ("-" for the zero time).
func age(t time.Time) string {
	if t.IsZero() {
		return "-"
	}
	d := time.Since(t)
	switch {
	case d < 0:
		return "0s"
	case d < time.Minute:
		return fmt.Sprintf("%ds", int(d.Seconds()))
	case d < time.Hour:
		return fmt.Sprintf("%dm", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh", int(d.Hours()))
	}
	return fmt.Sprintf("%dd", int(d.Hours()/24))
}
