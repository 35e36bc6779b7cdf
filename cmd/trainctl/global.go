package main

import (
	"encoding/json"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"
)

// Global flag names, read by every command through the cli.Context lineage.
const (
	flagDataDir = "data-dir"
	flagOutput  = "output"
)

func globalFlags() []cli.Flag {
	return []cli.Flag{
		&cli.StringFlag{
			Name:    flagDataDir,
			Usage:   "directory holding datasets, checkpoints and cluster state",
			EnvVars: []string{"TRAINCTL_DATA_DIR"},
			Value:   defaultDataDir(),
		},
		&cli.StringFlag{
			Name:    flagOutput,
			Aliases: []string{"o"},
			Usage:   "output format: table or json",
			Value:   "table",
		},
	}
}

func defaultDataDir() string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ".trainctl"
	}
	return filepath.Join(home, ".trainctl")
}

// dataDir returns the --data-dir in force for c.
func dataDir(c *cli.Context) string { return c.String(flagDataDir) }

// outputFormat returns "table" or "json", or an error naming the bad value.
func outputFormat(c *cli.Context) (string, error) {
	switch f := c.String(flagOutput); f {
	case "table", "json":
		return f, nil
	default:
		return "", fmt.Errorf("-o %q: want table or json", f)
	}
}

// printer writes command results as a table or as JSON, as -o says.
type printer struct {
	w      io.Writer
	format string
}

func newPrinter(c *cli.Context) (*printer, error) {
	f, err := outputFormat(c)
	if err != nil {
		return nil, err
	}
	return &printer{w: c.App.Writer, format: f}, nil
}

// JSON reports whether the caller should emit JSON.
func (p *printer) JSON() bool { return p.format == "json" }

// Value writes v as indented JSON.
func (p *printer) Value(v any) error {
	enc := json.NewEncoder(p.w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// Table writes a header row and rows, aligned in columns. In JSON mode use
// Value instead.
func (p *printer) Table(header []string, rows [][]string) error {
	tw := tabwriter.NewWriter(p.w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, strings.Join(header, "\t"))
	for _, r := range rows {
		fmt.Fprintln(tw, strings.Join(r, "\t"))
	}
	return tw.Flush()
}

// Result writes v as JSON, or as the given table in table mode.
func (p *printer) Result(v any, header []string, rows [][]string) error {
	if p.JSON() {
		return p.Value(v)
	}
	return p.Table(header, rows)
}
