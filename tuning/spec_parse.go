package tuning

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

	"gopkg.in/yaml.v3"

	"github.com/trainctl/trainctl/coordinator/jobspec"
)

// MaxSpecBytes bounds the size of a YAML sweep spec.
const MaxSpecBytes = jobspec.MaxSpecBytes

// ParseFile reads and parses the sweep spec at path; see Parse.
func ParseFile(path string) (Spec, error) {
	f, err := os.Open(path)
	if err != nil {
		return Spec{}, fmt.Errorf("sweep spec: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, MaxSpecBytes+1))
	if err != nil {
		return Spec{}, fmt.Errorf("sweep spec %s: %w", path, err)
	}
	return Parse(data, path)
}

// Parse decodes and validates a YAML sweep spec; filename names it in
// errors. It reports every problem at once as a jobspec.Errors of
// *jobspec.FieldError (wrapping jobspec.ErrInvalid), each naming the file,
// line and field, exactly as job specs do:
//
//	sweep.yaml:4: job.hyperparameters.lr: "fast" is not a number
//	sweep.yaml:12: search_space.lr: loguniform needs low > 0, got 0
//	sweep.yaml:20: scheduler.name: "bohb" is not one of fifo, asha, hyperband, median
//
// The job sub-tree is parsed by jobspec.Parse, so it accepts exactly what
// `trainctl submit` does, with its defaults; its errors carry the field
// prefix job. and lines of this file. Omitted fields take their defaults
// (Defaults). Unknown fields, duplicates, wrong types and invalid values
// are errors. With an error the returned Spec is the zero Spec.
func Parse(data []byte, filename string) (Spec, error) {
	p := &sparser{file: filename, lines: map[string]int{}, failed: map[string]bool{}}
	if len(data) > MaxSpecBytes {
		return Spec{}, jobspec.Errors{p.newError(0, "", "is larger than %d bytes", MaxSpecBytes)}
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return Spec{}, jobspec.Errors{p.newError(0, "", "empty sweep spec")}
		}
		return Spec{}, jobspec.Errors{p.syntaxError(err)}
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		return Spec{}, jobspec.Errors{p.newError(line, "", "a second YAML document; a sweep spec is one document")}
	case !errors.Is(err, io.EOF):
		return Spec{}, jobspec.Errors{p.syntaxError(err)}
	}
	root := &doc
	if root.Kind == yaml.DocumentNode && len(root.Content) > 0 {
		root = root.Content[0]
	}
	root = resolve(root)
	if isNull(root) || root.Kind == yaml.DocumentNode {
		return Spec{}, jobspec.Errors{p.newError(0, "", "empty sweep spec")}
	}
	if root.Kind != yaml.MappingNode {
		return Spec{}, jobspec.Errors{p.newError(root.Line, "", "the sweep spec must be a mapping of fields (name: …, job: …), got %s", describe(root))}
	}
	s := Defaults()
	jobSeen := false
	p.spec(root, &s, &jobSeen)
	if !jobSeen && !p.failed["job"] {
		p.add(0, "job", "required (a job spec: name, dataset, hyperparameters, …)")
	}
	if s.Budget.Max == 0 && s.Budget.Unit == UnitEpochs && !p.failed["budget.max"] {
		s.Budget.Max = s.Job.Hyperparameters.Epochs
	}
	slices.SortStableFunc(s.SearchSpace.Params, func(a, b Param) int { return strings.Compare(a.Name, b.Name) })
	for _, e := range s.check() {
		if p.failed[e.Field] || p.failedUnder(e.Field) || (e.Field == "search_space" && p.failed["search_space"]) {
			continue // its decode error is reported already
		}
		e.File, e.Line = filename, p.lineOf(e.Field)
		p.errs = append(p.errs, e)
	}
	if len(p.errs) > 0 {
		slices.SortStableFunc(p.errs, func(a, b *jobspec.FieldError) int { return a.Line - b.Line })
		return Spec{}, p.errs
	}
	return s, nil
}

// sparser decodes a sweep spec's YAML node tree, collecting errors. It
// follows jobspec's parser.
type sparser struct {
	file   string
	errs   jobspec.Errors
	lines  map[string]int  // field path → line of its value
	failed map[string]bool // field paths whose value did not decode
}

type sfield struct {
	name string
	set  func(path string, n *yaml.Node)
}

func (p *sparser) spec(root *yaml.Node, s *Spec, jobSeen *bool) {
	sc, b, ss := &s.Scheduler, &s.Budget, &s.Searcher
	p.mapping("", root, []sfield{
		{"name", func(path string, n *yaml.Node) { p.str(path, n, &s.Name) }},
		{"job", func(path string, n *yaml.Node) { *jobSeen = true; p.job(path, n, &s.Job) }},
		{"search_space", func(path string, n *yaml.Node) { p.space(path, n, &s.SearchSpace) }},
		{"objective", func(path string, n *yaml.Node) {
			p.mapping(path, n, []sfield{
				{"metric", func(path string, n *yaml.Node) { p.str(path, n, &s.Objective.Metric) }},
				{"mode", func(path string, n *yaml.Node) {
					var m string
					p.str(path, n, &m)
					s.Objective.Mode = Mode(m)
				}},
			})
		}},
		{"searcher", func(path string, n *yaml.Node) {
			var name string
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == "name" {
						name = n.Content[i+1].Value
					}
				}
			}
			tpeOnly := func(set func(path string, n *yaml.Node)) func(path string, n *yaml.Node) {
				return func(path string, n *yaml.Node) {
					if name != SearcherTPE {
						p.fail(path, "applies to searcher tpe only")
						return
					}
					set(path, n)
				}
			}
			p.mapping(path, n, []sfield{
				{"name", func(path string, n *yaml.Node) { p.str(path, n, &ss.Name) }},
				{"n_startup", tpeOnly(func(path string, n *yaml.Node) { p.integer(path, n, &ss.TPE.NStartup) })},
				{"n_candidates", tpeOnly(func(path string, n *yaml.Node) { p.integer(path, n, &ss.TPE.NCandidates) })},
				{"gamma", tpeOnly(func(path string, n *yaml.Node) { p.number(path, n, &ss.TPE.Gamma) })},
			})
		}},
		{"scheduler", func(path string, n *yaml.Node) {
			var name string
			if n.Kind == yaml.MappingNode {
				for i := 0; i+1 < len(n.Content); i += 2 {
					if n.Content[i].Value == "name" {
						name = n.Content[i+1].Value
					}
				}
			}
			only := func(names []string, set func(path string, n *yaml.Node)) func(path string, n *yaml.Node) {
				return func(path string, n *yaml.Node) {
					if !slices.Contains(names, name) {
						p.fail(path, "applies to scheduler %s only", strings.Join(names, ", "))
						return
					}
					set(path, n)
				}
			}
			p.mapping(path, n, []sfield{
				{"name", func(path string, n *yaml.Node) { p.str(path, n, &sc.Name) }},
				{"reduction_factor", only([]string{SchedulerASHA, SchedulerHyperband},
					func(path string, n *yaml.Node) { p.integer(path, n, &sc.ReductionFactor) })},
				{"grace_period", only([]string{SchedulerASHA, SchedulerHyperband, SchedulerMedian},
					func(path string, n *yaml.Node) { p.integer(path, n, &sc.GracePeriod) })},
				{"min_trials", only([]string{SchedulerMedian},
					func(path string, n *yaml.Node) { p.integer(path, n, &sc.MinTrials) })},
			})
		}},
		{"max_trials", func(path string, n *yaml.Node) { p.integer(path, n, &s.MaxTrials) }},
		{"max_concurrent", func(path string, n *yaml.Node) { p.integer(path, n, &s.MaxConcurrent) }},
		{"budget", func(path string, n *yaml.Node) {
			p.mapping(path, n, []sfield{
				{"unit", func(path string, n *yaml.Node) { p.str(path, n, &b.Unit) }},
				{"min", func(path string, n *yaml.Node) { p.integer(path, n, &b.Min) }},
				{"max", func(path string, n *yaml.Node) { p.integer(path, n, &b.Max) }},
			})
		}},
		{"seed", func(path string, n *yaml.Node) { p.unsigned(path, n, &s.Seed) }},
	})
}

// space decodes search_space: a mapping of parameter name to its
// distribution.
func (p *sparser) space(path string, n *yaml.Node, dst *Space) {
	if n.Kind != yaml.MappingNode {
		p.typeError(path, n, "a mapping of parameter names to {type: …}")
		return
	}
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind != yaml.ScalarNode {
			p.add(k.Line, path, "%s is not a parameter name", describe(k))
			continue
		}
		fp := path + "." + k.Value
		if first, dup := seen[k.Value]; dup {
			p.add(k.Line, fp, "duplicate parameter (first set on line %d)", first)
			continue
		}
		seen[k.Value] = k.Line
		p.lines[fp] = k.Line
		v = resolve(v)
		if isNull(v) {
			p.fail(fp, "needs a distribution ({type: uniform|loguniform|int|choice, …})")
			continue
		}
		prm := Param{Name: k.Value}
		ok := len(p.errs)
		var typ string
		p.mapping(fp, v, []sfield{
			{"type", func(path string, n *yaml.Node) { p.str(path, n, &typ) }},
			{"low", func(path string, n *yaml.Node) { p.number(path, n, &prm.Low) }},
			{"high", func(path string, n *yaml.Node) { p.number(path, n, &prm.High) }},
			{"log", func(path string, n *yaml.Node) { p.boolean(path, n, &prm.Log) }},
			{"values", func(path string, n *yaml.Node) { p.values(path, n, &prm.Values) }},
			{"grid_points", func(path string, n *yaml.Node) { p.integer(path, n, &prm.GridPoints) }},
		})
		prm.Type = ParamType(typ)
		if len(p.errs) > ok {
			p.failed[fp] = true // report the decode errors, not their consequences
		}
		dst.Params = append(dst.Params, prm)
	}
}

// values decodes a list of scalars: numbers, strings or booleans.
func (p *sparser) values(path string, n *yaml.Node, dst *[]Value) {
	if n.Kind != yaml.SequenceNode {
		p.typeError(path, n, "a list of values")
		return
	}
	for i, e := range n.Content {
		e = resolve(e)
		if e.Kind != yaml.ScalarNode {
			p.fail(path, "value %d is %s, not a number, string or boolean", i+1, describe(e))
			continue
		}
		switch e.ShortTag() {
		case "!!int":
			var v int64
			if err := e.Decode(&v); err != nil {
				p.fail(path, "value %d: %s is out of range", i+1, e.Value)
				continue
			}
			*dst = append(*dst, IntValue(v))
		case "!!float":
			var v float64
			if err := e.Decode(&v); err != nil {
				p.fail(path, "value %d: %s is out of range", i+1, e.Value)
				continue
			}
			*dst = append(*dst, Float(v))
		case "!!str":
			*dst = append(*dst, String(e.Value))
		case "!!bool":
			var v bool
			if err := e.Decode(&v); err != nil {
				p.fail(path, "value %d: %s is not a boolean", i+1, e.Value)
				continue
			}
			*dst = append(*dst, Bool(v))
		default:
			p.fail(path, "value %d is %s, not a number, string or boolean", i+1, describe(e))
		}
	}
}

// job parses the job sub-tree with jobspec.Parse: the sub-tree is written
// out as a YAML document of its own, parsed, and the errors' lines mapped
// back to this file through the node trees.
func (p *sparser) job(path string, n *yaml.Node, dst *jobspec.Spec) {
	if n.Kind != yaml.MappingNode {
		p.typeError(path, n, "a mapping (a job spec: name, dataset, …)")
		return
	}
	sub := copyNode(n, 0)
	data, err := yaml.Marshal(sub)
	if err != nil {
		p.fail(path, "cannot re-encode: %v", err)
		return
	}
	spec, err := jobspec.Parse(data, p.file)
	if err == nil {
		*dst = spec
		return
	}
	p.failed[path] = true
	var back yaml.Node
	lineMap := map[int]int{}
	if yaml.Unmarshal(data, &back) == nil && len(back.Content) == 1 {
		mapLines(back.Content[0], sub, lineMap)
	}
	orig := func(l int) int {
		if o, ok := lineMap[l]; ok {
			return o
		}
		return p.lines[path]
	}
	var errs jobspec.Errors
	if !errors.As(err, &errs) {
		p.fail(path, "%v", err)
		return
	}
	for _, e := range errs {
		c := *e
		c.File = p.file
		c.Line = orig(e.Line)
		if c.Field == "" {
			c.Field = path
		} else {
			c.Field = path + "." + c.Field
		}
		c.Msg = firstSetLine.ReplaceAllStringFunc(c.Msg, func(m string) string {
			l, _ := strconv.Atoi(firstSetLine.FindStringSubmatch(m)[1])
			return "first set on line " + strconv.Itoa(orig(l))
		})
		p.errs = append(p.errs, &c)
	}
}

var firstSetLine = regexp.MustCompile(`first set on line (\d+)`)

// copyNode copies n with aliases expanded and comments dropped, keeping
// lines; depth bounds alias expansion.
func copyNode(n *yaml.Node, depth int) *yaml.Node {
	n = resolve(n)
	c := &yaml.Node{Kind: n.Kind, Style: n.Style, Tag: n.Tag, Value: n.Value, Line: n.Line, Column: n.Column}
	if depth > 50 {
		return &yaml.Node{Kind: yaml.ScalarNode, Tag: "!!null", Value: "null", Line: n.Line}
	}
	for _, e := range n.Content {
		c.Content = append(c.Content, copyNode(e, depth+1))
	}
	return c
}

// mapLines walks two trees of the same shape and maps each line of a to
// the line of the matching node of b (the first on that line wins).
func mapLines(a, b *yaml.Node, m map[int]int) {
	if _, ok := m[a.Line]; !ok {
		m[a.Line] = b.Line
	}
	if len(a.Content) != len(b.Content) {
		return
	}
	for i := range a.Content {
		mapLines(a.Content[i], b.Content[i], m)
	}
}

// mapping decodes the mapping n, whose keys must be among fields. Null
// values leave their field at its default.
func (p *sparser) mapping(path string, n *yaml.Node, fields []sfield) {
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
		idx := slices.IndexFunc(fields, func(f sfield) bool { return f.name == k.Value })
		if idx < 0 {
			names := make([]string, len(fields))
			for j, f := range fields {
				names[j] = f.name
			}
			p.add(k.Line, fp, "unknown field (known: %s)", strings.Join(names, ", "))
			continue
		}
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

func (p *sparser) str(path string, n *yaml.Node, dst *string) {
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

func (p *sparser) integer(path string, n *yaml.Node, dst *int) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!int" {
		p.typeError(path, n, "an integer")
		return
	}
	var v int64
	if err := n.Decode(&v); err != nil || v < math.MinInt32 || v > math.MaxInt32 {
		p.fail(path, "%s is out of range", n.Value)
		return
	}
	*dst = int(v)
}

func (p *sparser) unsigned(path string, n *yaml.Node, dst *uint64) {
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

func (p *sparser) number(path string, n *yaml.Node, dst *float64) {
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

func (p *sparser) boolean(path string, n *yaml.Node, dst *bool) {
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

func (p *sparser) typeError(path string, n *yaml.Node, want string) {
	p.fail(path, "%s is not %s", describe(n), want)
}

func (p *sparser) fail(path, format string, args ...any) {
	p.failed[path] = true
	p.add(p.lines[path], path, format, args...)
}

func (p *sparser) add(line int, path, format string, args ...any) {
	p.errs = append(p.errs, p.newError(line, path, format, args...))
}

func (p *sparser) newError(line int, path, format string, args ...any) *jobspec.FieldError {
	return &jobspec.FieldError{File: p.file, Line: line, Field: path, Msg: fmt.Sprintf(format, args...)}
}

// failedUnder reports whether a decode error was reported for a field
// under path (a search-space parameter's type, say), so that validation
// does not repeat it.
func (p *sparser) failedUnder(path string) bool {
	for f := range p.failed {
		if strings.HasPrefix(f, path+".") {
			return true
		}
	}
	return false
}

// lineOf is the line of path's value, or of its nearest parent that was
// written, or 0.
func (p *sparser) lineOf(path string) int {
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

func (p *sparser) syntaxError(err error) *jobspec.FieldError {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		return p.newError(line, "", "YAML syntax: %s", m[2])
	}
	return p.newError(0, "", "YAML syntax: %s", strings.TrimPrefix(msg, "yaml: "))
}

func resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

func isNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

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
