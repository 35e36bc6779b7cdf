// Package strictyaml decodes hand-written YAML specs strictly, reporting
// every problem at once with the line and dotted field path it concerns.
//
// A Parser walks a yaml.v3 node tree: Mapping checks a mapping's keys
// against a table of known Fields (unknown fields, duplicate keys and
// non-scalar keys are errors) and hands each value to its Field's setter,
// which uses the typed readers (Str, Int, Uint, Float, Bool, Duration) to
// store it. A value of the wrong kind (a string where a number belongs, 1.5
// for an integer, "yes" for a boolean) is recorded as a Problem at the
// value's line instead of being coerced. The job spec (jobspec)
// and sweep spec (tuning) parsers share this machinery so that both accept
// and reject YAML alike and word their errors alike.
package strictyaml

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
	"unicode/utf8"

	"gopkg.in/yaml.v3"
)

// MaxAliasNodes bounds how many nodes the aliases in one field's value may
// stand for, counting each use of an alias as a copy of its anchor's value.
// Without a bound a small spec of nested aliases ("billion laughs") would
// make any walk or copy of the value take exponential time and memory.
const MaxAliasNodes = 100_000

// MaxProblems bounds the problems a Parser keeps. A spec with a mistake
// in every line (a megabyte of unknown keys, say) would otherwise make an
// error message a hundred times its size; past the first MaxProblems,
// Problems says how many more there were.
const MaxProblems = 100

// Problem is one thing wrong with a spec: what (Msg), about which field
// (Field, a dotted path; empty for the document as a whole) and where
// (Line, 1-based; 0 when there is no line, as for a missing field).
// Callers turn Problems into their own error type, adding the file name.
type Problem struct {
	// Line is the 1-based line of the field's value, or of the key for an
	// unknown or duplicate field; 0 when unknown.
	Line int
	// Field is the dotted path of the field, or "".
	Field string
	// Msg says what is wrong.
	Msg string
}

// Field is one known key of a mapping and how to decode its value: Set is
// called with the field's dotted path and its value, aliases resolved, for
// every non-null value.
type Field struct {
	// Name is the key as written in YAML.
	Name string
	// Set decodes the value n of the field at path, reporting problems to
	// the Parser.
	Set func(path string, n *yaml.Node)
}

// Parser decodes one spec's YAML node tree, remembering the line of every
// field it meets and collecting Problems rather than stopping at the
// first. Its zero value is not usable; create one with New. A Parser is
// not safe for concurrent use.
type Parser struct {
	file   string
	intLo  int64
	intHi  int64
	probs  []Problem
	more   int             // problems past MaxProblems, counted only
	lines  map[string]int  // field path → line of its value
	failed map[string]bool // field paths whose value did not decode
	sizes  map[*yaml.Node]*expansion
}

// expansion is what a node stands for once its aliases are expanded,
// counts saturating at MaxAliasNodes+1.
type expansion struct {
	nodes   int    // nodes in the expanded value
	aliased int    // of those, nodes that aliases stand for
	cycle   string // an alias inside the value it refers to, or ""
	done    bool   // false while the node's children are being counted
}

// New returns a Parser for the spec named file (used by callers in their
// errors; see File). Int accepts integers that fit in a signed integer of
// intBits bits (32 for a value that must fit in an int32, strconv.IntSize
// for an int); a value outside 1..64 means 64.
func New(file string, intBits int) *Parser {
	if intBits < 1 || intBits > 64 {
		intBits = 64
	}
	hi := int64(math.MaxInt64 >> (64 - intBits))
	return &Parser{file: file, intLo: -hi - 1, intHi: hi, lines: map[string]int{}, failed: map[string]bool{}, sizes: map[*yaml.Node]*expansion{}}
}

// ReadFile reads the spec file at path, at most maxBytes+1 bytes of it, so
// that Root can report a file that is too large without reading it all.
// what names the spec in errors ("job spec: open …: no such file").
func ReadFile(path string, maxBytes int, what string) ([]byte, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, int64(maxBytes)+1))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", what, path, err)
	}
	return data, nil
}

// File is the spec's file name as given to New.
func (p *Parser) File() string { return p.file }

// Root decodes data as exactly one YAML document of at most maxBytes bytes
// and returns its root node with aliases resolved. what names the spec in
// the problem for a second document ("a job spec"); empty is the message
// for a document that is missing or null. With a problem Root records it
// and returns nil; the root need not be a mapping (pass it to Mapping, or
// check its Kind, to report that).
func (p *Parser) Root(data []byte, maxBytes int, what, empty string) *yaml.Node {
	if len(data) > maxBytes {
		p.Add(0, "", "is larger than %d bytes", maxBytes)
		return nil
	}
	if line, msg := badText(data); msg != "" {
		p.Add(line, "", "YAML syntax: %s", msg)
		return nil
	}
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var doc yaml.Node
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			p.Add(0, "", "%s", empty)
		} else {
			p.syntax(err)
		}
		return nil
	}
	var extra yaml.Node
	switch err := dec.Decode(&extra); {
	case err == nil:
		line := extra.Line
		if len(extra.Content) > 0 {
			line = extra.Content[0].Line
		}
		p.Add(line, "", "a second YAML document; %s is one document", what)
		return nil
	case !errors.Is(err, io.EOF):
		p.syntax(err)
		return nil
	}
	root := &doc
	if root.Kind == yaml.DocumentNode {
		if len(root.Content) == 0 {
			p.Add(0, "", "%s", empty)
			return nil
		}
		root = root.Content[0]
	}
	root = Resolve(root)
	if IsNull(root) {
		p.Add(0, "", "%s", empty)
		return nil
	}
	return root
}

// Mapping decodes the mapping n at path ("" for the root), whose keys must
// be among fields. It records the line of each known field's value (of
// the key, for a block mapping or list, which starts on the next line)
// and calls its Set unless the value is null, which leaves the field at
// its default. A value whose aliases stand for more than MaxAliasNodes
// nodes, or that contains an alias to itself, is a problem and is not
// passed to Set, so that no setter walks or copies an alias bomb.
func (p *Parser) Mapping(path string, n *yaml.Node, fields []Field) {
	if n.Kind != yaml.MappingNode {
		p.TypeError(path, n, "a mapping")
		return
	}
	p.Entries(path, n, "field", func(fp string, k, v *yaml.Node) {
		idx := slices.IndexFunc(fields, func(f Field) bool { return f.Name == k.Value })
		if idx < 0 {
			names := make([]string, len(fields))
			for j, f := range fields {
				names[j] = f.Name
			}
			p.Add(k.Line, fp, "unknown field (known: %s)", strings.Join(names, ", "))
			return
		}
		// Problems with the field point at its value; for a nested mapping
		// written as a block, that is the key's line.
		line := v.Line
		if v.Kind == yaml.MappingNode || v.Kind == yaml.SequenceNode {
			line = k.Line
		}
		p.lines[fp] = line
		if x := p.expand(v); x.cycle != "" {
			p.Fail(fp, "alias *%s refers to a value that contains it", x.cycle)
			return
		} else if x.aliased > MaxAliasNodes {
			p.Fail(fp, "aliases expand to more than %d nodes", MaxAliasNodes)
			return
		}
		v = Resolve(v)
		if IsNull(v) {
			return
		}
		fields[idx].Set(fp, v)
	})
}

// Entries walks the mapping n at path key by key. It records a problem
// for a merge key (<<: not supported, since the fields it merges would
// escape the checks for unknown and duplicate fields), for a key that is
// not a scalar ("… is not a NOUN name") and for a repeated key
// ("duplicate NOUN (first set on line N)"), and calls fn with every other
// key's dotted path, its key node and its value node (aliases not yet
// resolved). For mappings whose keys are names the spec
// chooses (parameters, say) rather than a fixed set of fields.
func (p *Parser) Entries(path string, n *yaml.Node, noun string, fn func(fp string, k, v *yaml.Node)) {
	seen := map[string]int{}
	for i := 0; i+1 < len(n.Content); i += 2 {
		k, v := n.Content[i], n.Content[i+1]
		if k.Kind == yaml.ScalarNode && k.ShortTag() == "!!merge" {
			p.Add(k.Line, path, "merge keys (<<) are not supported; write the fields out")
			continue
		}
		if k.Kind != yaml.ScalarNode {
			p.Add(k.Line, path, "%s is not a %s name", Describe(k), noun)
			continue
		}
		fp := k.Value
		if path != "" {
			fp = path + "." + k.Value
		}
		if first, dup := seen[k.Value]; dup {
			p.Add(k.Line, fp, "duplicate %s (first set on line %d)", noun, first)
			continue
		}
		seen[k.Value] = k.Line
		fn(fp, k, v)
	}
}

// Str stores the string n in dst; anything else, including an unquoted
// number or boolean, is a problem that suggests quoting it.
func (p *Parser) Str(path string, n *yaml.Node, dst *string) {
	if n.Kind != yaml.ScalarNode || n.ShortTag() != "!!str" {
		want := "a string"
		if n.Kind == yaml.ScalarNode {
			want += fmt.Sprintf(" (quote it: %s)", Quote(n.Value))
		}
		p.TypeError(path, n, want)
		return
	}
	*dst = n.Value
}

// Int stores the integer n in dst if it fits in the bit size given to New.
func (p *Parser) Int(path string, n *yaml.Node, dst *int) {
	if !p.scalar(path, n, "an integer", "!!int") {
		return
	}
	var v int64
	if err := n.Decode(&v); err != nil || v < p.intLo || v > p.intHi {
		p.Fail(path, "%s is out of range", n.Value)
		return
	}
	*dst = int(v)
}

// Uint stores the non-negative integer n in dst.
func (p *Parser) Uint(path string, n *yaml.Node, dst *uint64) {
	if !p.scalar(path, n, "an integer", "!!int") {
		return
	}
	var v uint64
	if err := n.Decode(&v); err != nil {
		var i int64
		if n.Decode(&i) == nil && i < 0 {
			p.Fail(path, "must be >= 0, got %d", i)
		} else {
			p.Fail(path, "%s is out of range", n.Value)
		}
		return
	}
	*dst = v
}

// Float stores the number n (an integer or a float) in dst.
func (p *Parser) Float(path string, n *yaml.Node, dst *float64) {
	if !p.scalar(path, n, "a number", "!!float", "!!int") {
		return
	}
	var v float64
	if err := n.Decode(&v); err != nil {
		p.Fail(path, "%s is out of range", n.Value)
		return
	}
	*dst = v
}

// Bool stores the boolean n in dst.
func (p *Parser) Bool(path string, n *yaml.Node, dst *bool) {
	const want = "a boolean (true or false)"
	if !p.scalar(path, n, want, "!!bool") {
		return
	}
	var v bool
	if err := n.Decode(&v); err != nil {
		p.TypeError(path, n, want)
		return
	}
	*dst = v
}

// Duration stores the Go duration string n ("90s", "1h30m") in dst.
func (p *Parser) Duration(path string, n *yaml.Node, dst *time.Duration) {
	const want = "a duration (like 90s, 10m or 1h30m)"
	if !p.scalar(path, n, want, "!!str") {
		return
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil {
		p.TypeError(path, n, want)
		return
	}
	*dst = v
}

// scalar reports whether n is a scalar with one of tags; if not, it
// records that the value of path is not want.
func (p *Parser) scalar(path string, n *yaml.Node, want string, tags ...string) bool {
	if n.Kind != yaml.ScalarNode || !slices.Contains(tags, n.ShortTag()) {
		p.TypeError(path, n, want)
		return false
	}
	return true
}

// TypeError records that the value n of path is not what it should be
// (want: "a number", "a mapping"), marking path failed.
func (p *Parser) TypeError(path string, n *yaml.Node, want string) {
	p.Fail(path, "%s is not %s", Describe(n), want)
}

// Fail records a problem with the value of path at the line Mapping (or
// SetLine) recorded for it, and marks path failed so that validation of
// the decoded spec need not repeat it.
func (p *Parser) Fail(path, format string, args ...any) {
	p.failed[path] = true
	p.Add(p.lines[path], path, format, args...)
}

// Add records a problem at line with the field at path; past MaxProblems
// it only counts it.
func (p *Parser) Add(line int, path, format string, args ...any) {
	if len(p.probs) >= MaxProblems {
		p.more++
		return
	}
	p.probs = append(p.probs, Problem{Line: line, Field: path, Msg: fmt.Sprintf(format, args...)})
}

// Count is how many problems have been recorded so far, those past
// MaxProblems included, so that a caller can tell whether decoding some
// part of a spec added any.
func (p *Parser) Count() int { return len(p.probs) + p.more }

// Problems returns the recorded problems sorted by line, problems on one
// line in the order they were recorded; nil when there are none. When
// more than MaxProblems were recorded, it returns the first MaxProblems
// found and then one Problem without line or field that says how many
// more there were.
func (p *Parser) Problems() []Problem {
	if len(p.probs) == 0 {
		return nil
	}
	out := slices.Clone(p.probs)
	slices.SortStableFunc(out, func(a, b Problem) int { return a.Line - b.Line })
	if p.more > 0 {
		out = append(out, Problem{Msg: fmt.Sprintf("%d more problems not listed", p.more)})
	}
	return out
}

// MarkFailed marks path as a field whose value did not decode, for a
// problem recorded some other way than Fail.
func (p *Parser) MarkFailed(path string) { p.failed[path] = true }

// Failed reports whether the value of path did not decode.
func (p *Parser) Failed(path string) bool { return p.failed[path] }

// FailedUnder reports whether a field under path (path.x, path.x.y, …)
// did not decode, so that validation of path need not repeat the problem.
func (p *Parser) FailedUnder(path string) bool {
	for f := range p.failed {
		if strings.HasPrefix(f, path+".") {
			return true
		}
	}
	return false
}

// SetLine records line as the line of the value of path, for fields
// decoded without Mapping.
func (p *Parser) SetLine(path string, line int) { p.lines[path] = line }

// Line is the recorded line of the value of path, or 0.
func (p *Parser) Line(path string) int { return p.lines[path] }

// LineOf is the line of path's value, or of its nearest parent that was
// written, or 0: where to point a validation error about path.
func (p *Parser) LineOf(path string) int {
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

// yamlLine matches yaml.v3's error text, which carries the line.
var yamlLine = regexp.MustCompile(`^yaml: line (\d+): (.*)$`)

// syntax records a yaml.v3 decoding error with its line.
func (p *Parser) syntax(err error) {
	msg := err.Error()
	if m := yamlLine.FindStringSubmatch(msg); m != nil {
		line, _ := strconv.Atoi(m[1])
		p.Add(line, "", "YAML syntax: %s", m[2])
		return
	}
	p.Add(0, "", "YAML syntax: %s", strings.TrimPrefix(msg, "yaml: "))
}

// expand counts what n stands for with its aliases expanded, once per
// node: the counts are kept, so that checking every field of nested
// mappings costs time in proportion to the document, not to its expansion.
func (p *Parser) expand(n *yaml.Node) *expansion {
	if x, ok := p.sizes[n]; ok {
		if !x.done { // n is being counted: an alias inside n refers to n
			return &expansion{nodes: MaxAliasNodes + 1, aliased: MaxAliasNodes + 1, cycle: "?"}
		}
		return x
	}
	x := &expansion{}
	p.sizes[n] = x
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		t := p.expand(n.Alias)
		x.nodes, x.aliased, x.cycle = t.nodes, t.nodes, t.cycle
		if x.cycle == "?" {
			x.cycle = n.Value
		}
	} else {
		x.nodes = 1
		for _, c := range n.Content {
			cx := p.expand(c)
			x.nodes = min(x.nodes+cx.nodes, MaxAliasNodes+1)
			x.aliased = min(x.aliased+cx.aliased, MaxAliasNodes+1)
			if x.cycle == "" {
				x.cycle = cx.cycle
			}
		}
	}
	x.done = true
	return x
}

// badText finds the first byte of data that yaml.v3's reader rejects
// (invalid UTF-8, or a control character YAML does not allow), and returns
// its 1-based line and what is wrong; line 0 and "" when there is none.
// yaml.v3 reports these without a line. Input that starts with a UTF-16
// byte order mark is left to yaml.v3, which decodes it.
func badText(data []byte) (line int, msg string) {
	if bytes.HasPrefix(data, []byte{0xff, 0xfe}) || bytes.HasPrefix(data, []byte{0xfe, 0xff}) {
		return 0, ""
	}
	line = 1
	for i := 0; i < len(data); {
		r, size := utf8.DecodeRune(data[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			return line, fmt.Sprintf("invalid UTF-8 (byte 0x%02x)", data[i])
		case r == '\r' && i+1 < len(data) && data[i+1] == '\n':
			// counted with the \n
		case r == '\n' || r == '\r' || r == 0x85 || r == 0x2028 || r == 0x2029:
			line++
		case r == '\t' || r >= 0x20 && r <= 0x7e || r >= 0xa0 && r <= 0xd7ff ||
			r >= 0xe000 && r <= 0xfffd || r >= 0x10000:
		default:
			return line, fmt.Sprintf("control character %U is not allowed", r)
		}
		i += size
	}
	return 0, ""
}

// Resolve follows aliases to the node they stand for (at most 100 hops,
// so that a malformed alias chain cannot loop forever).
func Resolve(n *yaml.Node) *yaml.Node {
	for i := 0; n.Kind == yaml.AliasNode && n.Alias != nil && i < 100; i++ {
		n = n.Alias
	}
	return n
}

// IsNull reports whether n is absent or null (~, null, or nothing).
func IsNull(n *yaml.Node) bool {
	return n.Kind == 0 || (n.Kind == yaml.ScalarNode && n.ShortTag() == "!!null")
}

// MaxQuoteLen bounds the bytes of a value that Quote and Describe show in
// a problem's message, so that an error about a long value is not as long
// as the value.
const MaxQuoteLen = 64

// Quote returns s quoted as strconv.Quote does, cut to its first
// MaxQuoteLen bytes (at a character boundary) and followed by its length
// when longer: "aaaa…" (10000 bytes).
func Quote(s string) string {
	if len(s) <= MaxQuoteLen {
		return strconv.Quote(s)
	}
	cut := MaxQuoteLen
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return strconv.Quote(s[:cut]+"…") + " (" + strconv.Itoa(len(s)) + " bytes)"
}

// Describe shows a value in a problem's message: a string quoted (Quote),
// other scalars as written (cut like a string), collections by kind.
func Describe(n *yaml.Node) string {
	switch n.Kind {
	case yaml.MappingNode:
		return "a mapping"
	case yaml.SequenceNode:
		return "a list"
	case yaml.AliasNode:
		return "an alias (*" + n.Value + ")"
	case yaml.ScalarNode:
		if n.ShortTag() == "!!str" {
			return Quote(n.Value)
		}
		if len(n.Value) > MaxQuoteLen {
			return Quote(n.Value)
		}
		return n.Value
	default:
		return "an empty value"
	}
}
