package main

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/dataset"
	"github.com/trainctl/trainctl/dataset/stream"
)

// datasetStreamCommands are `trainctl dataset serve|pull|stream`, the Arrow
// Flight side of datasets. Owned by the streaming work.
func datasetStreamCommands() []*cli.Command {
	return []*cli.Command{datasetServeCommand(), datasetPullCommand(), datasetStreamCommand()}
}

// fetchCacheDir is where pulled and streamed versions are cached by id.
func fetchCacheDir(c *cli.Context) string {
	return filepath.Join(dataDir(c), "cache", "datasets")
}

func fromFlag() *cli.StringFlag {
	return &cli.StringFlag{
		Name:     "from",
		Usage:    "`ADDR` (host:port) of a dataset Flight server (trainctl dataset serve)",
		EnvVars:  []string{"TRAINCTL_DATASET_SERVER"},
		Required: true,
	}
}

func datasetServeCommand() *cli.Command {
	return &cli.Command{
		Name:  "serve",
		Usage: "serve the local dataset store over Arrow Flight",
		Description: "Serves every version in the store under --data-dir to workers and to\n" +
			"`dataset pull` / `dataset stream`. Workers ask for one shard of one epoch of a split\n" +
			"(DoGet with a JSON ticket) and get exactly the order a local reader would produce;\n" +
			"whole versions can be pulled into another store or cache. Stops on Ctrl-C, letting\n" +
			"running streams finish for a few seconds.\n\n" +
			"Examples:\n" +
			"  trainctl dataset serve\n" +
			"  trainctl dataset serve --listen 0.0.0.0:8815",
		Flags: []cli.Flag{
			&cli.StringFlag{Name: "listen", Usage: "address to listen on", Value: stream.DefaultAddr},
			&cli.IntFlag{Name: "max-batch-bytes", Usage: "bound on one record batch (a batch always holds at least one example)", Value: stream.DefaultMaxBatchBytes},
			&cli.IntFlag{Name: "max-message-bytes", Usage: "gRPC message limit; must hold one example", Value: stream.DefaultMaxMessageBytes},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 0 {
				return fmt.Errorf("serve: takes no arguments, got %q", c.Args().Slice())
			}
			st, err := dataset.OpenStore(dataset.StoreDir(dataDir(c)))
			if err != nil {
				return err
			}
			lis, err := net.Listen("tcp", c.String("listen"))
			if err != nil {
				return fmt.Errorf("serve: %w", err)
			}
			srv := stream.NewServer(st, stream.ServerConfig{
				MaxBatchBytes:   c.Int("max-batch-bytes"),
				MaxMessageBytes: c.Int("max-message-bytes"),
				Logger:          slog.New(slog.NewTextHandler(c.App.ErrWriter, nil)),
			})
			defer srv.Close()
			ms, err := st.List()
			if err != nil {
				return err
			}
			fmt.Fprintf(c.App.ErrWriter, "serving %d dataset versions from %s on %s (Ctrl-C to stop)\n", len(ms), st.Dir(), lis.Addr())
			return srv.Serve(c.Context, lis)
		},
	}
}

func datasetPullCommand() *cli.Command {
	return &cli.Command{
		Name:      "pull",
		Usage:     "download a version from a Flight server into the local store",
		ArgsUsage: "NAME[@VER]",
		Description: "Resolves NAME[@VER] (latest, v3 or an id prefix) on the server and downloads the\n" +
			"whole version into the cache under --data-dir, unless the local store or cache already\n" +
			"holds that content. The content digest is checked against the version id before the\n" +
			"file is used, and the version is registered in the local store under the same name\n" +
			"(or --name). Prints the version id, which is the same on both sides; the local version\n" +
			"number (v1, v2, ...) follows the local history.\n\n" +
			"Examples:\n" +
			"  trainctl dataset pull --from 10.0.0.5:8815 shapes\n" +
			"  trainctl dataset pull --from 10.0.0.5:8815 --name pets-copy pets@v2",
		Flags: []cli.Flag{
			fromFlag(),
			&cli.StringFlag{Name: "name", Usage: "local dataset name (default: the remote name)"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("pull: want one NAME[@VER] argument, got %d", c.NArg())
			}
			ref := c.Args().First()
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			st, err := dataset.OpenStore(dataset.StoreDir(dataDir(c)))
			if err != nil {
				return err
			}
			cl, err := stream.Dial(c.Context, c.String("from"))
			if err != nil {
				return err
			}
			defer cl.Close()
			start := time.Now()
			remote, err := cl.Info(c.Context, ref)
			if err != nil {
				return err
			}
			// Content already in the local store (under any name) needs no
			// download; ImportFile below verifies it against the id anyway.
			res := stream.FetchResult{Manifest: remote, Path: st.DataPath(remote.ID), Cached: true}
			if !st.HasObject(remote.ID) {
				if res, err = cl.FetchVersion(c.Context, remote.ID, fetchCacheDir(c)); err != nil {
					return fmt.Errorf("pull %s: %w", remote.Ref(), err)
				}
			}
			name := c.String("name")
			if name == "" {
				name = remote.Name
			}
			src := dataset.Source{
				Kind:   dataset.SourceImport,
				Path:   "flight://" + cl.Addr() + "/" + remote.Ref(),
				Params: map[string]string{"remote_ref": remote.Ref(), "remote_created": remote.Created},
			}
			local, created, err := st.ImportFile(c.Context, name, res.Path, remote.ID, src)
			if err != nil {
				return err
			}
			if !res.Cached {
				// The store now holds its own verified copy; a copy that was
				// already cached belongs to whoever cached it.
				if err := os.Remove(res.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			out := struct {
				Ref        string `json:"ref"`
				ID         string `json:"id"`
				Remote     string `json:"remote"`
				Examples   int    `json:"examples"`
				Bytes      int64  `json:"bytes"`
				Created    bool   `json:"created"`
				Downloaded bool   `json:"downloaded"`
				Seconds    string `json:"seconds"`
			}{local.Ref(), local.ID, src.Path, local.Examples, local.Bytes, created, !res.Cached, fmt.Sprintf("%.2f", time.Since(start).Seconds())}
			if p.JSON() {
				return p.Value(out)
			}
			state := "new version"
			if !created {
				state = "already present"
			}
			return p.Table([]string{"REF", "ID", "EXAMPLES", "SIZE", "FROM", "STATE"}, [][]string{{
				out.Ref, out.ID, strconv.Itoa(out.Examples), sizeIEC(out.Bytes), out.Remote, state,
			}})
		},
	}
}

// parseShard parses the --shard value "i/n".
func parseShard(s string) (int, int, error) {
	a, b, ok := strings.Cut(s, "/")
	i, err1 := strconv.Atoi(a)
	n, err2 := strconv.Atoi(b)
	if !ok || err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("--shard %q: want i/n, for example 0/4", s)
	}
	if n < 1 || i < 0 || i >= n {
		return 0, 0, fmt.Errorf("--shard %q: want 0 <= i < n", s)
	}
	return i, n, nil
}

func datasetStreamCommand() *cli.Command {
	return &cli.Command{
		Name:      "stream",
		Usage:     "stream one shard of one epoch of a split from a Flight server",
		ArgsUsage: "NAME[@VER]",
		Description: "Streams, from --offset to the end of the epoch (or --limit examples), the examples\n" +
			"that shard i of n gets in epoch --epoch under --seed: the exact sequence a trainer\n" +
			"rank reads. Prints each example's position (epoch/offset) and id, then a summary with\n" +
			"the throughput and the position to resume from.\n\n" +
			"Examples:\n" +
			"  trainctl dataset stream --from 127.0.0.1:8815 shapes\n" +
			"  trainctl dataset stream --from 127.0.0.1:8815 --shard 1/4 --epoch 2 --seed 7 shapes@v1\n" +
			"  trainctl -o json dataset stream --from 127.0.0.1:8815 --offset 100 --limit 10 shapes",
		Flags: []cli.Flag{
			fromFlag(),
			&cli.StringFlag{Name: "split", Usage: "train or val", Value: dataset.SplitTrain},
			&cli.StringFlag{Name: "shard", Usage: "shard i of n, as i/n", Value: "0/1"},
			&cli.IntFlag{Name: "epoch", Usage: "epoch (each epoch has its own shuffle)", Value: 0},
			&cli.Uint64Flag{Name: "seed", Usage: "shuffle seed shared by all shards of a job", Value: 1},
			&cli.IntFlag{Name: "offset", Usage: "start at this offset within the shard's epoch", Value: 0},
			&cli.IntFlag{Name: "limit", Usage: "stop after this many examples (0: to the end of the epoch)"},
			&cli.BoolFlag{Name: "quiet", Aliases: []string{"q"}, Usage: "print only the summary"},
		},
		Action: func(c *cli.Context) error {
			if c.NArg() != 1 {
				return fmt.Errorf("stream: want one NAME[@VER] argument, got %d", c.NArg())
			}
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			shard, n, err := parseShard(c.String("shard"))
			if err != nil {
				return err
			}
			if c.Int("limit") < 0 {
				return fmt.Errorf("--limit %d: want 0 or more", c.Int("limit"))
			}
			cl, err := stream.Dial(c.Context, c.String("from"))
			if err != nil {
				return err
			}
			defer cl.Close()
			m, err := cl.Info(c.Context, c.Args().First())
			if err != nil {
				return err
			}
			tk := stream.Ticket{
				Version: m.ID, Split: c.String("split"), Shard: shard, NumShards: n,
				Epoch: c.Int("epoch"), Seed: c.Uint64("seed"), Offset: c.Int("offset"),
			}
			if err := tk.Validate(); err != nil {
				return err
			}
			type row struct {
				Pos dataset.Position `json:"pos"`
				ID  string           `json:"id"`
			}
			var rows []row
			var bytes int64
			next := tk.Position()
			start := time.Now()
			for it, err := range cl.Stream(c.Context, tk) {
				if err != nil {
					return err
				}
				bytes += int64(len(it.Example.Image) + len(it.Example.Mask))
				rows = append(rows, row{it.Pos, it.Example.ID})
				next = it.Next
				if c.Int("limit") > 0 && len(rows) == c.Int("limit") {
					break
				}
			}
			secs := time.Since(start).Seconds()
			summary := struct {
				Ref      string           `json:"ref"`
				ID       string           `json:"id"`
				Split    string           `json:"split"`
				Shard    string           `json:"shard"`
				Seed     uint64           `json:"seed"`
				Examples int              `json:"examples"`
				Bytes    int64            `json:"bytes"`
				Seconds  float64          `json:"seconds"`
				MBps     float64          `json:"mb_per_s"`
				Next     dataset.Position `json:"next"`
			}{m.Ref(), m.ID, tk.Split, fmt.Sprintf("%d/%d", shard, n), tk.Seed, len(rows), bytes, secs, float64(bytes) / 1e6 / max(secs, 1e-9), next}
			if p.JSON() {
				out := struct {
					Summary  any   `json:"summary"`
					Examples []row `json:"examples,omitempty"`
				}{Summary: summary}
				if !c.Bool("quiet") {
					out.Examples = rows
				}
				return p.Value(out)
			}
			if !c.Bool("quiet") {
				table := make([][]string, len(rows))
				for i, r := range rows {
					table[i] = []string{r.Pos.String(), r.ID}
				}
				if err := p.Table([]string{"POS", "ID"}, table); err != nil {
					return err
				}
			}
			_, err = fmt.Fprintf(c.App.Writer, "%d examples of %s (%s) split %s shard %s seed %d: %s in %.2fs, %.1f MB/s; next position %s\n",
				summary.Examples, m.Ref(), dataset.ShortID(m.ID), tk.Split, summary.Shard, tk.Seed,
				sizeIEC(bytes), secs, summary.MBps, next)
			return err
		},
	}
}

// sizeIEC formats a size with a binary unit.
func sizeIEC(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}
