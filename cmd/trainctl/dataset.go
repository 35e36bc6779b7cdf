package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/schollz/progressbar/v3"
	"github.com/urfave/cli/v2"
	"golang.org/x/term"

	"github.com/trainctl/trainctl/dataset"
)

// datasetCommand is the `trainctl dataset` group. Owned by the dataset work.
func datasetCommand() *cli.Command {
	cmds := []*cli.Command{
		datasetGenCommand(),
		datasetIngestCommand(),
		datasetLsCommand(),
		datasetShowCommand(),
		datasetVerifyCommand(),
		datasetRmCommand(),
		datasetExportCommand(),
		datasetPushCommand(),
	}
	return &cli.Command{
		Name:  "dataset",
		Usage: "generate, ingest, inspect, verify and stream versioned datasets",
		Description: "Datasets are immutable versions of Arrow files, named NAME@v1, NAME@v2, ... and\n" +
			"identified by the SHA-256 of their content, kept under --data-dir/datasets.\n" +
			"A reference is NAME (the latest version), NAME@latest, NAME@v3 or NAME@<id prefix>.\n\n" +
			"Example:\n" +
			"  trainctl dataset gen --name shapes --n 2500\n" +
			"  trainctl dataset ls\n" +
			"  trainctl dataset show shapes@v1",
		Subcommands: append(cmds, datasetStreamCommands()...),
	}
}

// openStore opens the dataset store of the --data-dir in force.
func openStore(c *cli.Context) (*dataset.Store, error) {
	return dataset.OpenStore(dataset.StoreDir(dataDir(c)))
}

func datasetGenCommand() *cli.Command {
	return &cli.Command{
		Name:      "gen",
		Usage:     "generate a synthetic segmentation dataset and register it as a version",
		ArgsUsage: " ",
		Description: "Generates --n images with pet/background/border masks (the Oxford-IIIT Pet trimap\n" +
			"classes). Shapes: textured objects (unions of ellipses, rectangles, stars, blobs) on\n" +
			"noisy, textured backgrounds with distractors; colour does not give the class away.\n" +
			"The same --seed, --n and --size always give the same version id; generating it\n" +
			"again registers nothing new.\n\n" +
			"Example:\n" +
			"  trainctl dataset gen --kind shapes --name shapes --n 2500 --size 128 --seed 1\n" +
			"  trainctl dataset gen --name shapes --n 2500 --coordinator 127.0.0.1:7421   # and push it",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "kind", Usage: "generator: shapes", Value: "shapes"},
			&cli.StringFlag{Name: "name", Usage: "dataset name (a-z 0-9 . _ -)", Required: true},
			&cli.IntFlag{Name: "n", Usage: "number of examples", Required: true},
			&cli.IntFlag{Name: "size", Usage: "image side in pixels", Value: 128},
			&cli.Uint64Flag{Name: "seed", Usage: "random seed; the data is a function of it"},
			&cli.Float64Flag{Name: "val-fraction", Usage: "fraction of examples in the val split", Value: 0.2},
		}, uploadFlags()...),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			if _, err := newPrinter(c); err != nil {
				return err
			}
			if k := c.String("kind"); k != "shapes" {
				return fmt.Errorf("gen: --kind %q: the only generator is shapes", k)
			}
			if err := dataset.ValidateName(c.String("name")); err != nil {
				return fmt.Errorf("gen: --name: %w", err)
			}
			vf, err := valFraction(c)
			if err != nil {
				return err
			}
			cfg := dataset.ShapesConfig{N: c.Int("n"), Size: c.Int("size"), Seed: c.Uint64("seed"), ValFraction: vf}
			if err := cfg.Validate(); err != nil {
				return fmt.Errorf("gen: %w", err)
			}
			st, err := openStore(c)
			if err != nil {
				return err
			}
			bar := newBar(c, cfg.N, "generating")
			start := time.Now()
			m, created, err := st.Register(c.Context, c.String("name"), cfg.Meta(), func(yield func(dataset.Example) error) (dataset.Provenance, error) {
				err := dataset.GenerateShapes(c.Context, cfg, func(e dataset.Example) error {
					bar.add()
					return yield(e)
				})
				return dataset.Provenance{Source: cfg.Source()}, err
			})
			bar.finish()
			if err != nil {
				return err
			}
			if err := printRegistered(c, m, created, time.Since(start)); err != nil {
				return err
			}
			return pushIfAsked(c, st, m)
		},
	}
}

// valFraction reads --val-fraction, where 0 means no val split (the
// library's zero value means its default).
func valFraction(c *cli.Context) (float64, error) {
	vf := c.Float64("val-fraction")
	if vf < 0 || vf >= 1 {
		return 0, fmt.Errorf("--val-fraction %v: want 0 <= f < 1", vf)
	}
	if vf == 0 {
		return -1, nil
	}
	return vf, nil
}

func datasetIngestCommand() *cli.Command {
	return &cli.Command{
		Name:      "ingest",
		Usage:     "ingest image folders (Oxford-IIIT Pet layout, or images + masks) as a version",
		ArgsUsage: "[ROOT]",
		Description: "Two layouts:\n" +
			"  --layout oxford-pet ROOT   ROOT/images/*.jpg and ROOT/annotations/trimaps/*.png, trimap\n" +
			"                             values 1/2/3 become classes pet/background/border\n" +
			"  --images DIR --masks DIR   masks are PNGs of class indices (0, 1, ...) named like\n" +
			"                             their images; --classes names them\n" +
			"Images are decoded by content (JPEG, PNG, GIF; grayscale and CMYK become RGB) and\n" +
			"resized to --size square; masks by nearest neighbour. Ids are file stems; the split\n" +
			"comes from a hash of the id. Dotfiles and non-image files are ignored. Bad files\n" +
			"(undecodable, no mask, mask size or values wrong) are all listed and nothing is\n" +
			"registered, unless --skip-bad leaves them out and records them in the manifest.\n" +
			"Ingesting unchanged files again registers nothing new.\n\n" +
			"Examples:\n" +
			"  trainctl dataset ingest --name pets --layout oxford-pet ~/data/oxford-iiit-pet --skip-bad\n" +
			"  trainctl dataset ingest --name cells --images ./img --masks ./lbl --classes cell,bg,edge\n\n" +
			"With --coordinator (or TRAINCTL_COORDINATOR) the new version is also pushed to the cluster.",
		Flags: append([]cli.Flag{
			&cli.StringFlag{Name: "name", Usage: "dataset name (a-z 0-9 . _ -)", Required: true},
			&cli.StringFlag{Name: "layout", Usage: "oxford-pet (takes ROOT) or folders (takes --images and --masks)"},
			&cli.StringFlag{Name: "images", Usage: "folders layout: directory of images"},
			&cli.StringFlag{Name: "masks", Usage: "folders layout: directory of PNG masks"},
			&cli.IntFlag{Name: "size", Usage: "resize images to SIZE×SIZE", Value: 128},
			&cli.Float64Flag{Name: "val-fraction", Usage: "fraction of ids hashed into the val split", Value: 0.2},
			&cli.StringFlag{Name: "classes", Usage: "comma-separated class names, in index order (default object,background,border; pet layout pet,background,border)"},
			&cli.BoolFlag{Name: "skip-bad", Usage: "leave bad files out (listed in the manifest) instead of failing"},
		}, uploadFlags()...),
		Action: runIngest,
	}
}

func ingestConfig(c *cli.Context) (dataset.IngestConfig, error) {
	cfg := dataset.IngestConfig{Layout: c.String("layout"), Size: c.Int("size"), SkipBad: c.Bool("skip-bad")}
	vf, err := valFraction(c)
	if err != nil {
		return cfg, err
	}
	cfg.ValFraction = vf
	if s := c.String("classes"); s != "" {
		cfg.Classes = strings.Split(s, ",")
		for i := range cfg.Classes {
			cfg.Classes[i] = strings.TrimSpace(cfg.Classes[i])
		}
	}
	if err := flagAfterArgs(c); err != nil {
		return cfg, err
	}
	images, masks := c.String("images"), c.String("masks")
	if cfg.Layout == "" {
		switch {
		case images != "" || masks != "":
			cfg.Layout = dataset.LayoutFolders
		case c.NArg() == 1:
			return cfg, fmt.Errorf("ingest: which layout is %s? Say --layout oxford-pet %s, or use --images DIR --masks DIR", c.Args().First(), c.Args().First())
		default:
			return cfg, errors.New("ingest: give --layout oxford-pet ROOT, or --images DIR --masks DIR (see --help)")
		}
	}
	switch cfg.Layout {
	case dataset.LayoutOxfordPet:
		if images != "" || masks != "" {
			return cfg, errors.New("ingest: --layout oxford-pet takes ROOT, not --images/--masks")
		}
		if c.NArg() != 1 {
			return cfg, fmt.Errorf("ingest: --layout oxford-pet wants one ROOT argument, got %d", c.NArg())
		}
		cfg.Root = c.Args().First()
	case dataset.LayoutFolders:
		if c.NArg() != 0 {
			return cfg, fmt.Errorf("ingest: the folders layout takes --images and --masks, not arguments %q", c.Args().Slice())
		}
		if images == "" || masks == "" {
			return cfg, errors.New("ingest: the folders layout needs both --images DIR and --masks DIR")
		}
		cfg.ImagesDir, cfg.MasksDir = images, masks
	default:
		return cfg, fmt.Errorf("ingest: --layout %q: want oxford-pet or folders", cfg.Layout)
	}
	return cfg, cfg.Validate()
}

func runIngest(c *cli.Context) error {
	if _, err := newPrinter(c); err != nil {
		return err
	}
	name := c.String("name")
	if err := dataset.ValidateName(name); err != nil {
		return fmt.Errorf("ingest: --name: %w", err)
	}
	cfg, err := ingestConfig(c)
	if err != nil {
		return err
	}
	st, err := openStore(c)
	if err != nil {
		return err
	}
	var pb *bar
	started := false
	cfg.Progress = func(done, total int) {
		if !started {
			pb, started = newBar(c, total, "ingesting"), true
		}
		pb.add()
	}
	start := time.Now()
	m, created, err := st.Register(c.Context, name, cfg.Meta(), func(yield func(dataset.Example) error) (dataset.Provenance, error) {
		return dataset.Ingest(c.Context, cfg, yield)
	})
	pb.finish()
	if errors.Is(err, dataset.ErrBadInput) {
		return fmt.Errorf("%w\nNothing was registered. Fix or remove these files, or rerun with --skip-bad to leave them out", err)
	}
	if err != nil {
		return err
	}
	if err := printRegistered(c, m, created, time.Since(start)); err != nil {
		return err
	}
	if err := pushIfAsked(c, st, m); err != nil {
		return err
	}
	p, _ := newPrinter(c)
	if p.JSON() {
		return nil
	}
	w := c.App.Writer
	if len(m.Skipped) > 0 {
		fmt.Fprintf(w, "skipped %d bad file(s):\n", len(m.Skipped))
		for _, s := range m.Skipped {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	if len(m.Ignored) > 0 {
		fmt.Fprintf(w, "ignored %d file(s) that are not images (dotfiles, other extensions); see `trainctl dataset show %s`\n", len(m.Ignored), m.Ref())
	}
	return nil
}

// bar is a progress bar on a terminal's stderr, and nothing otherwise (a
// nil *bar is valid and silent).
type bar struct{ pb *progressbar.ProgressBar }

func newBar(c *cli.Context, total int, what string) *bar {
	f, ok := c.App.ErrWriter.(*os.File)
	if c.App.ErrWriter == nil {
		f, ok = os.Stderr, true
	}
	if !ok || !term.IsTerminal(int(f.Fd())) {
		return nil
	}
	return &bar{pb: progressbar.NewOptions(total,
		progressbar.OptionSetWriter(f),
		progressbar.OptionSetDescription(what),
		progressbar.OptionShowCount(),
		progressbar.OptionShowIts(),
		progressbar.OptionSetItsString("img"),
		progressbar.OptionThrottle(100*time.Millisecond),
		progressbar.OptionClearOnFinish(),
	)}
}

func (b *bar) add() {
	if b != nil {
		b.pb.Add(1)
	}
}

func (b *bar) finish() {
	if b != nil {
		b.pb.Finish()
	}
}

// printRegistered reports the outcome of gen or ingest.
func printRegistered(c *cli.Context, m dataset.Manifest, created bool, took time.Duration) error {
	p, err := newPrinter(c)
	if err != nil {
		return err
	}
	if p.JSON() {
		return p.Value(struct {
			Created  bool             `json:"created"`
			Manifest dataset.Manifest `json:"manifest"`
		}{created, m})
	}
	what := "created"
	if !created {
		what = "unchanged, same content as"
	}
	_, err = fmt.Fprintf(c.App.Writer, "%s %s (id %s): %d examples (train %d, val %d), %dx%dx%d, %s, in %.1fs\n",
		what, m.Ref(), dataset.ShortID(m.ID), m.Examples, m.Counts[dataset.SplitTrain], m.Counts[dataset.SplitVal],
		m.Meta.Height, m.Meta.Width, m.Meta.Channels, humanBytes(m.Bytes), took.Seconds())
	return err
}

func datasetLsCommand() *cli.Command {
	return &cli.Command{
		Name:      "ls",
		Usage:     "list dataset versions",
		ArgsUsage: "[NAME]",
		Description: "Lists every version of every dataset, or of NAME only, oldest first.\n\n" +
			"Example:\n  trainctl dataset ls\n  trainctl -o json dataset ls shapes",
		Action: func(c *cli.Context) error {
			if err := flagAfterArgs(c); err != nil {
				return err
			}
			if c.NArg() > 1 {
				return fmt.Errorf("ls wants at most one NAME, got %q", c.Args().Slice())
			}
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			st, err := openStore(c)
			if err != nil {
				return err
			}
			all, err := st.List()
			if err != nil {
				return err
			}
			ms := []dataset.Manifest{}
			for _, m := range all {
				if c.NArg() == 0 || m.Name == c.Args().First() {
					ms = append(ms, m)
				}
			}
			if c.NArg() == 1 && len(ms) == 0 {
				_, err := st.Resolve(c.Args().First())
				return err // says it is not found and what exists
			}
			rows := make([][]string, len(ms))
			for i, m := range ms {
				rows[i] = []string{m.Name, m.Version(), dataset.ShortID(m.ID), strconv.Itoa(m.Examples),
					strconv.Itoa(m.Counts[dataset.SplitTrain]), strconv.Itoa(m.Counts[dataset.SplitVal]),
					fmt.Sprintf("%dx%d", m.Meta.Height, m.Meta.Width), humanBytes(m.Bytes), m.Created, sourceSummary(m.Source)}
			}
			return p.Result(ms, []string{"NAME", "VERSION", "ID", "EXAMPLES", "TRAIN", "VAL", "SIZE", "BYTES", "CREATED", "SOURCE"}, rows)
		},
	}
}

func sourceSummary(s dataset.Source) string {
	switch s.Kind {
	case dataset.SourceGen:
		return fmt.Sprintf("gen %s seed=%s", s.Generator, s.Params["seed"])
	case dataset.SourceIngest:
		if s.Path != "" {
			return fmt.Sprintf("ingest %s %s", s.Layout, s.Path)
		}
		return fmt.Sprintf("ingest %s %s", s.Layout, s.Images)
	default:
		return strings.TrimSpace(s.Kind + " " + s.Path)
	}
}

func datasetShowCommand() *cli.Command {
	return &cli.Command{
		Name:      "show",
		Usage:     "show a version's manifest",
		ArgsUsage: "NAME[@VER]",
		Description: "Prints the manifest: id, parent, source, counts per split, class histogram, file\n" +
			"digest and any files skipped or ignored at ingest. VER is latest, v3 or an id prefix.\n\n" +
			"Example:\n  trainctl dataset show shapes@v2\n  trainctl -o json dataset show pets",
		Action: func(c *cli.Context) error {
			ref, err := oneArg(c)
			if err != nil {
				return err
			}
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			st, err := openStore(c)
			if err != nil {
				return err
			}
			m, err := st.Resolve(ref)
			if err != nil {
				return err
			}
			if p.JSON() {
				return p.Value(m)
			}
			return writeManifest(c.App.Writer, m)
		},
	}
}

// writeManifest prints a manifest for people.
func writeManifest(w io.Writer, m dataset.Manifest) error {
	parent := "none (first version)"
	if m.Parent != "" {
		parent = m.Parent
	}
	fmt.Fprintf(w, "dataset   %s\n", m.Ref())
	fmt.Fprintf(w, "id        %s\n", m.ID)
	fmt.Fprintf(w, "parent    %s\n", parent)
	fmt.Fprintf(w, "created   %s\n", m.Created)
	fmt.Fprintf(w, "source    %s\n", m.Source.Kind)
	for _, kv := range [][2]string{{"generator", m.Source.Generator}, {"layout", m.Source.Layout}, {"path", m.Source.Path}, {"images", m.Source.Images}, {"masks", m.Source.Masks}} {
		if kv[1] != "" {
			fmt.Fprintf(w, "  %-12s %s\n", kv[0], kv[1])
		}
	}
	keys := make([]string, 0, len(m.Source.Params))
	for k := range m.Source.Params {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		fmt.Fprintf(w, "  %-12s %s\n", k, m.Source.Params[k])
	}
	fmt.Fprintf(w, "examples  %d (train %d, val %d)\n", m.Examples, m.Counts[dataset.SplitTrain], m.Counts[dataset.SplitVal])
	fmt.Fprintf(w, "geometry  %dx%d, %d channels, schema v%d\n", m.Meta.Height, m.Meta.Width, m.Meta.Channels, m.SchemaVersion)
	var total int64
	for _, n := range m.ClassPixels {
		total += n
	}
	fmt.Fprintf(w, "classes   %d\n", len(m.Meta.Classes))
	for i, name := range m.Meta.Classes {
		var n int64
		if i < len(m.ClassPixels) {
			n = m.ClassPixels[i]
		}
		pct := 0.0
		if total > 0 {
			pct = 100 * float64(n) / float64(total)
		}
		fmt.Fprintf(w, "  %d %-12s %6.2f%% of pixels (%d)\n", i, name, pct, n)
	}
	fmt.Fprintf(w, "file      %s, sha256 %s\n", humanBytes(m.Bytes), m.FileSHA256)
	if len(m.Skipped) > 0 {
		fmt.Fprintf(w, "skipped   %d bad file(s)\n", len(m.Skipped))
		for _, s := range m.Skipped {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	if len(m.Ignored) > 0 {
		fmt.Fprintf(w, "ignored   %d file(s)\n", len(m.Ignored))
		for _, s := range m.Ignored {
			fmt.Fprintf(w, "  %s\n", s)
		}
	}
	return nil
}

func datasetVerifyCommand() *cli.Command {
	return &cli.Command{
		Name:      "verify",
		Usage:     "check versions against their manifests (file digest, content digest, counts)",
		ArgsUsage: "NAME[@VER]...",
		Description: "Re-reads each version file: its size and SHA-256 must match the manifest, it must\n" +
			"parse, and the SHA-256 of its content must equal the version id. Exits non-zero and\n" +
			"says what mismatched if any version is damaged.\n\n" +
			"Example:\n  trainctl dataset verify shapes@v1 pets",
		Action: func(c *cli.Context) error {
			if err := flagAfterArgs(c); err != nil {
				return err
			}
			if c.NArg() == 0 {
				return errors.New("verify wants at least one NAME[@VER] (see --help)")
			}
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			st, err := openStore(c)
			if err != nil {
				return err
			}
			type result struct {
				Ref   string `json:"ref"`
				ID    string `json:"id,omitempty"`
				OK    bool   `json:"ok"`
				Error string `json:"error,omitempty"`
			}
			var results []result
			var rows [][]string
			failed := 0
			for _, ref := range c.Args().Slice() {
				r := result{Ref: ref}
				m, err := st.Resolve(ref)
				if err == nil {
					r.Ref, r.ID = m.Ref(), m.ID
					err = st.Verify(c.Context, m.Ref())
				}
				status := "ok"
				if err != nil {
					failed++
					r.Error, status = err.Error(), "FAILED"
				}
				r.OK = err == nil
				results = append(results, r)
				rows = append(rows, []string{r.Ref, dataset.ShortID(r.ID), status})
			}
			if err := p.Result(results, []string{"VERSION", "ID", "STATUS"}, rows); err != nil {
				return err
			}
			if failed > 0 {
				var msgs []string
				for _, r := range results {
					if !r.OK {
						msgs = append(msgs, r.Error)
					}
				}
				return fmt.Errorf("%d of %d version(s) failed verification:\n  %s", failed, len(results), strings.Join(msgs, "\n  "))
			}
			return nil
		},
	}
}

func datasetRmCommand() *cli.Command {
	return &cli.Command{
		Name:      "rm",
		Usage:     "remove a dataset version (or, with --all, every version of a name)",
		ArgsUsage: "NAME[@VER]",
		Description: "Removes the version's manifest, and its file when no other name uses the same\n" +
			"content. NAME alone means the latest version; --all removes them all.\n\n" +
			"With --coordinator (or TRAINCTL_COORDINATOR) it removes the version from the\n" +
			"cluster registry instead, and its blob from every coordinator; it is refused\n" +
			"while a job that has not ended, or a running sweep, uses it.\n\n" +
			"Example:\n  trainctl dataset rm shapes@v1\n  trainctl dataset rm --all shapes\n" +
			"  trainctl dataset rm --coordinator 127.0.0.1:7421 shapes@v1",
		Flags: withClusterFlags(
			&cli.BoolFlag{Name: "all", Usage: "remove every version of NAME"},
		),
		Action: func(c *cli.Context) error {
			ref, err := oneArg(c)
			if err != nil {
				return err
			}
			if c.IsSet(flagCoordinator) {
				return runClusterDatasetRm(c, ref)
			}
			p, err := newPrinter(c)
			if err != nil {
				return err
			}
			st, err := openStore(c)
			if err != nil {
				return err
			}
			refs := []string{ref}
			if c.Bool("all") {
				if strings.Contains(ref, "@") {
					return fmt.Errorf("rm --all takes a NAME, not a version (%q)", ref)
				}
				m, err := st.Resolve(ref)
				if err != nil {
					return err
				}
				refs = refs[:0]
				all, err := st.List()
				if err != nil {
					return err
				}
				for _, o := range all {
					if o.Name == m.Name {
						refs = append(refs, o.Ref())
					}
				}
			}
			var removed []dataset.Manifest
			var rows [][]string
			for _, r := range refs {
				m, err := st.Remove(r)
				if err != nil {
					return err
				}
				removed = append(removed, m)
				rows = append(rows, []string{"removed", m.Ref(), dataset.ShortID(m.ID)})
			}
			if p.JSON() {
				return p.Value(removed)
			}
			for _, r := range rows {
				if _, err := fmt.Fprintf(c.App.Writer, "%s %s (id %s)\n", r[0], r[1], r[2]); err != nil {
					return err
				}
			}
			return nil
		},
	}
}

// humanBytes formats a size with a binary unit.
func humanBytes(n int64) string {
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
