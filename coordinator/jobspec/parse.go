package jobspec

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// MaxSpecBytes bounds the size of a YAML job spec.
const MaxSpecBytes = 1 << 20

// ParseFile reads and parses the job spec at path; see Parse.
func ParseFile(path string) (Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return Spec{}, fmt.Errorf("job spec: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSpecBytes+1))
	if err != nil {
		return Spec{}, fmt.Errorf("job spec %s: %w", path, err)
	}
	return Parse(data, path)
}

// Parse decodes and validates a YAML job spec; filename names it in
// errors. Omitted fields (and fields set to null) take their defaults
// (Defaults). It reports every problem at once, as an Errors of
// *FieldError wrapping ErrInvalid, each naming the file, line and field:
//
//	job.yaml:3: hyperparameter: unknown field (known: name, dataset, …)
//	job.yaml:7: hyperparameters.lr: "fast" is not a number
//	job.yaml:9: resources.ranks: must be in 1..1024, got 0
//	job.yaml: name: required
//
// Unknown fields, duplicate fields, values of the wrong type (a string
// where a number belongs, 1.5 for an integer, "yes" for a boolean) and
// invalid values are all errors; so are YAML syntax errors and more than
// one YAML document. With an error the returned Spec is the zero Spec.
func Parse(data []byte, filename string) (Spec, error) {
	p := &parser{file: filename, lines: map[string]int{}, failed: map[string]bool{}}
	if len(data) > MaxSpecBytes {
		return Spec{}, Errors{p.newError(0, "", "is larger than %d bytes", MaxSpecBytes)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Spec{}, Errors{p.newError(0, "", "empty job spec (want at least name and dataset)")}
		}
		return Spec{}, Errors{p.syntaxError(err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		return Spec{}, Errors{p.newError(line, "", "a second YAML document; a job spec is one document")}
	case !errors.Is(err, io.EOF):
		return Spec{}, Errors{p.syntaxError(err)}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			return Spec{}, Errors{p.newError(0, "", "empty job spec (want at least name and dataset)")}
		}
		root = root.Content[0]
	}
	root = resolve(root)
	if isNull(root) {
		return Spec{}, Errors{p.newError(0, "", "empty job spec (want at least name and dataset)")}
	}
	s := Defaults()
	if root.Kind != yaml.MappingNode {
		p.add(root.Line, "", "the job spec must be a mapping of fields (name: …, dataset: …), got %s", describe(root))
		return Spec{}, p.errs
	}
	p.spec(root, &s)
	for _, e := range s.check() {
		if p.failed[e.Field] {
			continue // its decode error is reported already
		}
		e.File, e.Line = filename, p.lineOf(e.Field)
		p.errs = append(p.errs, e)
	}
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *FieldError) int { return a.Line - b.Line })
		return Spec{}, p.errs
	}
	return s, nil
}

// parser decodes a spec's YAML node tree, collecting errors.
type parser struct {
	file   string
	errs   Errors
	lines  map[string]int  // field path → line of its value
	failed map[string]bool // field paths whose value did not decode
}

// field is one known key of a mapping and how to decode its value.
type field struct {
	name string
	set  func(path string, n *yaml.Node)
}

// spec decodes the top-level mapping into s.
func (p *parser) spec(root *yaml.Node, s *Spec) {
	h, r := &s.Hyperparameters, &s.Resources
	p.mapping("", root, []field{
		{"name", func(path string, n *yaml.Node) { p.str(path, n, &s.Name) }},
		{"dataset", func(path string, n *yaml.Node) { p.str(path, n, &s.Dataset) }},
		{"model", func(path string, n *yaml.Node) { p.str(path, n, &s.Model) }},
		{"hyperparameters", func(path string, n *yaml.Node) {
			p.mapping(path, n, []field{
				{"epochs", func(path string, n *yaml.Node) { p.integer(path, n, &h.Epochs) }},
				{"batch", func(path string, n *yaml.Node) { p.integer(path, n, &h.Batch) }},
				{"lr", func(path string, n *yaml.Node) { p.number(path, n, &h.LR) }},
				{"optimizer", func(path string, n *yaml.Node) { p.str(path, n, &h.Optimizer) }},
				{"momentum", func(path string, n *yaml.Node) { p.number(path, n, &h.Momentum) }},
				{"weight_decay", func(path string, n *yaml.Node) { p.number(path, n, &h.WeightDecay) }},
				{"seed", func(path string, n *yaml.Node) { p.unsigned(path, n, &h.Seed) }},
				{"flip", func(path string, n *yaml.Node) { p.boolean(path, n, &h.Flip) }},
			})
		}},
		{"resources", func(path string, n *yaml.Node) {
			p.mapping(path, n, []field{
				{"ranks", func(path string, n *yaml.Node) { p.integer(path, n, &r.Ranks) }},
				{"gpus_per_rank", func(path string, n *yaml.Node) { p.integer(path, n, &r.GPUsPerRank) }},
				{"cpus_per_rank", func(path string, n *yaml.Node) { p.integer(path, n, &r.CPUsPerRank) }},
				{"spot", func(path string, n *yaml.Node) { p.boolean(path, n, &r.Spot) }},
			})
		}},
		{"max_restarts", func(path string, n *yaml.Node) { p.integer(path, n, &s.MaxRestarts) }},
		{"checkpoint_every", func(path string, n *yaml.Node) { p.integer(path, n, &s.CheckpointEvery) }},
		{"priority", func(path string, n *yaml.Node) { p.integer(path, n, &s.Priority) }},
		{"max_time", func(path string, n *yaml.Node) { p.duration(path, n, &s.MaxTime) }},
	})
}

// mapping decodes the mapping n, whose keys must be among fields. Null
// values leave their field at its default.
func (p *parser) mapping(path string, n *yaml.Node, fields []field) {
	if n.Kind != yaml.MappingNode {
		p.typeError(path, n, "a mapping")
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.add(k.Line, path, "%s is not a field name", describe(k))
			continue
		}
		fp := k.Value
		if path != "" {
			fp = path + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			p.add(k.Line, fp, "duplicate field (first set on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		idx := slices.IndexFunc(fields, func(f field) bool { return f.name == k.Value })
		if idx < 0 {
			names := make([]string, len(fields))
			for j, f := range fields {
				names[j] = f.name
			}
			p.add(k.Line, fp, "unknown field (known: %s)", strings.Join(names, ", "))
			continue
		}
		// Errors about the field point at its value; for a nested mapping
		// written as a block, that is the key's line.
		line := v.Line
		if v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode {
			line = k.Line
		}
		p.lines[fp] = line
		v = resolve(v)
		if isNull(v) {
			continue
		}
		fields[idx].set(fp, v)
	}
}

func (p *parser) str(path string, n *yaml.Node, dst *string) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		want := "a string"
		if n.Kind == yaml.ScalarNode {
			want += fmt.Sprintf(" (quote it: %q)", n.Value)
		}
		p.typeError(path, n, want)
		return
	}
	*dst = n.Value
}

func (p *parser) integer(path string, n *yaml.Node, dst *int) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.typeError(path, n, "an integer")
		return
	}
	var v int64
	if err := n.Decode(&v); err != nil || v < math.MinInt || v > math.MaxInt {
		p.fail(path, "%s is out of range", n.Value)
		return
	}
	*dst = int(v)
}

func (p *parser) unsigned(path string, n *yaml.Node, dst *uint64) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.typeError(path, n, "an integer")
		return
	}
	var v uint64
	if err := n.Decode(&v); err != nil {
		var i int64
		if n.Decode(&i) == nil && i < 0 {
			p.fail(path, "must be >= 0, got %d", i)
		} else {
			p.fail(path, "%s is out of range", n.Value)
		}
		return
	}
	*dst = v
}

func (p *parser) number(path string, n *yaml.Node, dst *float64) {
	if n.Kind != yaml.ScalarNode || (n.ShortTag() != "!!float" && n.ShortTag() != "!!int") {
		p.typeError(path, n, "a number")
		return
	}
	var v float64
	if err := n.Decode(&v); err != nil {
		p.fail(path, "%s is out of range", n.Value)
		return
	}
	*dst = v
}

func (p *parser) boolean(path string, n *yaml.Node, dst *bool) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!bool" {
		p.typeError(path, n, "a boolean (true or false)")
		return
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		p.typeError(path, n, "a boolean (true or false)")
		return
	}
	*dst = v
}

func (p *parser) duration(path string, n *yaml.Node, dst *Duration) {
	const want = "a duration (like 90s, 10m or 1h30m)"
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		p.typeError(path, n, want)
		return
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		p.typeError(path, n, want)
		return
	}
	*dst = Duration(v)
}

// typeError reports that the value n of path is not what it should be.
func (p *parser) typeError(path string, n *yaml.Node, want string) {
	p.fail(path, "%s is not %s", describe(n), want)
}

// fail reports a value of path that did not decode, at its line.
func (p *parser) fail(path, format string, args ...any) {
	p.failed[path] = true
	p.add(p.lines[path], path, format, args...)
}

func (p *parser) add(line int, path, format string, args ...any) {
	p.errs = append(p.errs, p.newError(line, path, format, args...))
}

func (p *parser) newError(line int, path, format string, args ...any) *FieldError {
	return &FieldError{File: p.file, Line: line, Field: path, Msg: fmt.Sprintf(format, args...)}
}

// lineOf is the line of path's value, or of its nearest parent that was
// written, or 0.
func (p *parser) lineOf(path string) int {
	for {
		if l, ok := p.lines[path]; ok {
			return l
		}
		i := strings.LastIndexByte(path, '.')
		if i < 0 {
			return 0
		}
		path = path[:i]
	}
}

var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntaxError turns a yaml.v3 error into a FieldError with its line.
func (p *parser) syntaxError(err error) *FieldError {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return p.newError(line, "", "YAML syntax: %s", m[2])
	}
	return p.newError(0, "", "YAML syntax: %s", strings.TrimPrefix(msg, "yaml: "))
}

// resolve follows aliases to the node they stand for.
func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// describe shows a value in an error message: a string quoted, other
// scalars as written, collections by kind.
func describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			return strconv.Quote(n.Value)
		}
		return n.Value
	default:
		return "an empty value"
	}
}
