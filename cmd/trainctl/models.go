package main

import (
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/trainctl/trainctl/api"
)

// `trainctl models ls|get|register`: the model registry, named versions of
// checkpoints that serving loads (the newest version of a name). A
// completed sweep registers its best checkpoint under the sweep's name.

func modelsCommand() *cli.Command {
	return &cli.Command{
		Name:  "models",
		Usage: "list, inspect and register model versions (named checkpoints to serve)",
		Description: "A model is a name with numbered versions, each a checkpoint. A completed sweep registers\n" +
			"its best checkpoint as the next version of the model named after the sweep; register\n" +
			"others by checkpoint digest, or as the latest checkpoint of a job or the best of a\n" +
			"sweep.\n\n" +
			"Examples:\n" +
			"  trainctl models ls\n" +
			"  trainctl models get unet-shapes-lr\n" +
			"  trainctl models register --sweep 5c1e0a9b7d3f2e64 unet-prod\n" +
			"  trainctl models register --job 3f2a9c0d1e4b5a67 unet-prod",
		Subcommands: []*cli.Command{modelsLsCommand(), modelsGetCommand(), modelsRegisterCommand()},
	}
}

const modelsLsHint = "`trainctl models ls` lists the models"

// modelSource says where a version came from: "sweep X", "job Y", or "-".
func modelSource(m *api.ModelVersion) string {
	var parts []string
	if m.SweepID != "" {
		parts = append(parts, "sweep "+m.SweepID)
	}
	if m.JobID != "" {
		parts = append(parts, "job "+m.JobID)
	}
	return orDash(strings.Join(parts, ", "))
}

// modelValue formats a version's objective: "val_mean_iou=0.61", or "-".
func modelValue(m *api.ModelVersion) string {
	if m.Metric == "" {
		return "-"
	}
	return m.Metric + "=" + fmtValue(m.Value)
}

// latestModels keeps the newest version of every name, in the order the
// names first appear.
func latestModels(vs []*api.ModelVersion) (latest []*api.ModelVersion, counts map[string]int) {
	idx := map[string]int{}
	counts = map[string]int{}
	for _, v := range vs {
		counts[v.Name]++
		i, ok := idx[v.Name]
		if !ok {
			idx[v.Name] = len(latest)
			latest = append(latest, v)
			continue
		}
		if v.Version > latest[i].Version {
			latest[i] = v
		}
	}
	return latest, counts
}

// modelsLsRows are the rows of `models ls`, one per name.
func modelsLsRows(latest []*api.ModelVersion, counts map[string]int) [][]string {
	rows := make([][]string, len(latest))
	for i, m := range latest {
		rows[i] = []string{m.Name, "v" + strconv.Itoa(m.Version), strconv.Itoa(counts[m.Name]), shortDigest(m.Checkpoint),
			modelSource(m), modelValue(m), age(m.CreateTime)}
	}
	return rows
}

func modelsLsCommand() *cli.Command {
	return &cli.Command{
		Name:         "ls",
		Usage:        "list models: the newest version of every name",
		ArgsUsage:    " ",
		OnUsageError: globalFlagHint,
		Description: "One row per model name with its newest version (what serving loads), how many\n" +
			"versions it has, the checkpoint, where it came from and its objective value.\n" +
			"-o json prints those newest versions.\n\n" +
			"Examples:\n  trainctl models ls\n  trainctl -o json models ls",
		Flags: clusterFlags(),
		Action: func(c *cli.Context) error {
			if err := noArgs(c); err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			vs, err := cl.Models(c.Context, "")
			if err != nil {
				return clusterError(c, err, "", "")
			}
			latest, counts := latestModels(vs)
			if latest == nil {
				latest = []*api.ModelVersion{}
			}
			return p.Result(latest, []string{"NAME", "LATEST", "VERSIONS", "CHECKPOINT", "FROM", "VALUE", "AGE"}, modelsLsRows(latest, counts))
		},
	}
}

// modelVersionRows are the rows of `models get`, one per version.
func modelVersionRows(vs []*api.ModelVersion) [][]string {
	rows := make([][]string, len(vs))
	for i, m := range vs {
		rows[i] = []string{"v" + strconv.Itoa(m.Version), m.Checkpoint, modelSource(m), modelValue(m), m.CreateTime.Format(time.RFC3339)}
	}
	return rows
}

func notFoundModel(name string) string { return fmt.Sprintf("model %q", name) }

func modelsGetCommand() *cli.Command {
	return &cli.Command{
		Name:         "get",
		Usage:        "show every version of a model, oldest first",
		ArgsUsage:    "NAME",
		OnUsageError: globalFlagHint,
		Description: "The newest version (listed last) is the one serving loads.\n\n" +
			"Examples:\n  trainctl models get unet-shapes-lr\n  trainctl -o json models get unet-shapes-lr",
		Flags: clusterFlags(),
		Action: func(c *cli.Context) error {
			name, err := oneArg(c)
			if err != nil {
				return err
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			vs, err := cl.Models(c.Context, name)
			if err != nil {
				return clusterError(c, err, notFoundModel(name), modelsLsHint)
			}
			if len(vs) == 0 {
				return fmt.Errorf("no model %q in the cluster at %s (%s)", name, c.String(flagCoordinator), modelsLsHint)
			}
			return p.Result(vs, []string{"VERSION", "CHECKPOINT", "FROM", "VALUE", "CREATED"}, modelVersionRows(vs))
		},
	}
}

// registerSource reads the one of --checkpoint, --job and --sweep given
// and returns the request body and what it names (for a not-found error).
func registerSource(c *cli.Context, name string) (api.RegisterModelBody, string, error) {
	body := api.RegisterModelBody{Name: name}
	var set []string
	var what string
	for _, f := range []string{"checkpoint", "job", "sweep"} {
		if !c.IsSet(f) {
			continue
		}
		v := strings.TrimSpace(c.String(f))
		if v == "" {
			return body, "", fmt.Errorf("models register: --%s is empty", f)
		}
		set = append(set, "--"+f)
		switch f {
		case "checkpoint":
			body.Checkpoint, what = v, fmt.Sprintf("checkpoint %q", v)
		case "job":
			body.JobID, what = v, notFoundJob(v)
		case "sweep":
			body.SweepID, what = v, notFoundSweep(v)
		}
	}
	switch len(set) {
	case 0:
		return body, "", fmt.Errorf("models register %s: say which checkpoint: --checkpoint DIGEST, --job ID (its latest) or --sweep ID (its best)", name)
	case 1:
		return body, what, nil
	}
	return body, "", fmt.Errorf("models register %s: %s: give exactly one of --checkpoint, --job, --sweep", name, strings.Join(set, " and "))
}

func modelsRegisterCommand() *cli.Command {
	return &cli.Command{
		Name:         "register",
		Usage:        "register a checkpoint as the next version of a model",
		ArgsUsage:    "NAME",
		OnUsageError: globalFlagHint,
		Description: "Takes exactly one of: --checkpoint DIGEST (a checkpoint the cluster holds), --job ID\n" +
			"(the job's latest checkpoint) or --sweep ID (the sweep's best checkpoint, with its\n" +
			"objective). The new version is the name's newest, so serving switches to it. Flags go\n" +
			"before NAME.\n\n" +
			"Examples:\n" +
			"  trainctl models register --sweep 5c1e0a9b7d3f2e64 unet-prod\n" +
			"  trainctl models register --job 3f2a9c0d1e4b5a67 unet-prod\n" +
			"  trainctl models register --checkpoint sha256:9f86d081884c7d65... unet-prod",
		Flags: withClusterFlags(
			&cli.StringFlag{Name: "checkpoint", Usage: "register the checkpoint with this `DIGEST`"},
			&cli.StringFlag{Name: "job", Usage: "register the latest checkpoint of job `ID`"},
			&cli.StringFlag{Name: "sweep", Usage: "register the best checkpoint of sweep `ID`"},
		),
		Action: func(c *cli.Context) error {
			name, err := oneArg(c)
			if err != nil {
				return err
			}
			if strings.TrimSpace(name) == "" {
				return fmt.Errorf("models register: the model NAME is empty")
			}
			p, cl, err := clusterSetup(c)
			if err != nil {
				return err
			}
			body, what, err := registerSource(c, name)
			if err != nil {
				return err
			}
			m, created, err := cl.RegisterModel(c.Context, body)
			if err != nil {
				return fmt.Errorf("models register %s: %w", name, clusterError(c, err, what, ""))
			}
			if p.JSON() {
				return p.Value(m)
			}
			return writeRegistered(c.App.Writer, m, created)
		},
	}
}

// writeRegistered prints the version a registration created or, when
// created is false, the latest version that already had the checkpoint.
func writeRegistered(w io.Writer, m *api.ModelVersion, created bool) error {
	what := "checkpoint " + m.Checkpoint
	if src := modelSource(m); src != "-" {
		what += " (from " + src + ")"
	}
	if m.Metric != "" {
		what += ", " + modelValue(m)
	}
	s := fmt.Sprintf("registered %s v%d: %s", m.Name, m.Version, what)
	if !created {
		s = fmt.Sprintf("no new version: %s v%d, the latest, already has %s", m.Name, m.Version, what)
	}
	_, err := fmt.Fprintln(w, s)
	return err
}
