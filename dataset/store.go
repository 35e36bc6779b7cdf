package dataset

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/trainctl/trainctl/internal/durable"
	"hash"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path/filepath"
	"slices"
	"strings"
)

// Store layout under its directory (by default <data-dir>/datasets):
//
//	objects/<id>.arrow        version files, content-addressed by version id
//	names/<name>/<id>.json    one manifest per version of a name
//	tmp/                      files being written; renamed into place when
//	                          complete, removed on open when abandoned
//	lock                      advisory lock serialising commits and removals
//
// A version exists exactly when its manifest exists. Manifests and objects
// are written to tmp/, fsynced, renamed into place and their directory
// fsynced, so a crash leaves either the whole version or none of it (at
// worst an unreferenced object, which the next Register of the same content
// reuses).
const (
	objectsDir = "objects"
	namesDir   = "names"
	tmpDir     = "tmp"
	lockFile   = "lock"
)

// StoreDir is the directory of the dataset store inside a data directory.
func StoreDir(dataDir string) string { return filepath.Join(dataDir, "datasets") }

// Store keeps named, immutable, content-addressed dataset versions on local
// disk. It is safe for concurrent use by goroutines and, through advisory
// file locks, by several processes sharing the directory.
type Store struct {
	dir string
	tmp *durable.TempDir
	log *slog.Logger
}

// OpenStore opens (creating if needed) the store in dir and removes
// abandoned temporary files left by crashed writers. Files that a live
// writer still holds locked are left alone.
func OpenStore(dir string) (*Store, error) {
	s := &Store{dir: dir, log: slog.Default().With("store", dir)}
	for _, d := range []string{objectsDir, namesDir} {
		if err := os.MkdirAll(filepath.Join(dir, d), 0o755); err != nil {
			return nil, fmt.Errorf("open dataset store %s: %w", dir, err)
		}
	}
	tmp, removed, err := durable.OpenTempDir(filepath.Join(dir, tmpDir))
	for _, p := range removed {
		s.log.Warn("removed abandoned temporary file", "path", p)
	}
	if err != nil {
		return nil, fmt.Errorf("open dataset store %s: %w", dir, err)
	}
	s.tmp = tmp
	return s, nil
}

// Dir is the store's directory.
func (s *Store) Dir() string { return s.dir }

// DataPath is the path of the version file with the given id.
func (s *Store) DataPath(id string) string {
	return filepath.Join(s.dir, objectsDir, id+".arrow")
}

func (s *Store) manifestPath(name, id string) string {
	return filepath.Join(s.dir, namesDir, name, id+".json")
}

// lock takes the store's exclusive lock, held while versions are committed
// or removed; reads need none because every file appears by rename.
func (s *Store) lock() (unlock func(), err error) {
	f, err := os.OpenFile(filepath.Join(s.dir, lockFile), os.O_CREATE|os.O_RDWR, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock dataset store: %w", err)
	}
	if err := durable.Lock(f, true, true); err != nil {
		f.Close()
		return nil, fmt.Errorf("lock dataset store: %w", err)
	}
	return func() { f.Close() }, nil
}

// stagedVersion is a version file being written to tmp/ together with its
// digests and statistics.
type stagedVersion struct {
	f     *os.File
	bw    *bufio.Writer
	fileH hash.Hash
	size  int64
	vw    *VersionWriter
	dig   *Digester
	stats *contentStats
	done  bool
}

func (s *Store) stage(meta Meta) (*stagedVersion, error) {
	f, err := s.tmp.Create("version-*.arrow")
	if err != nil {
		return nil, err
	}
	st := &stagedVersion{f: f, fileH: sha256.New(), dig: NewDigester(meta), stats: newContentStats(meta)}
	st.bw = bufio.NewWriterSize(io.MultiWriter(f, st.fileH, (*countWriter)(&st.size)), 1<<20)
	if st.vw, err = NewVersionWriter(st.bw, meta); err != nil {
		st.abort()
		return nil, err
	}
	return st, nil
}

// countWriter counts the bytes written through it.
type countWriter int64

// Write counts p.
func (c *countWriter) Write(p []byte) (int, error) { *c += countWriter(len(p)); return len(p), nil }

func (st *stagedVersion) write(e Example) error {
	if err := st.vw.Write(e); err != nil {
		return err
	}
	st.dig.Add(e)
	st.stats.add(e)
	return nil
}

// finish completes and fsyncs the file.
func (st *stagedVersion) finish() error {
	if err := st.vw.Close(); err != nil {
		return err
	}
	if err := st.bw.Flush(); err != nil {
		return err
	}
	if err := st.f.Sync(); err != nil {
		return err
	}
	return nil
}

// abort removes the temporary file unless it was committed.
func (st *stagedVersion) abort() {
	if st.done {
		return
	}
	st.done = true
	st.vw.Close()
	name := st.f.Name()
	st.f.Close()
	os.Remove(name)
}

// Register writes a new version of dataset name. produce must call yield
// for every example, in strictly ascending id order (ErrOrder otherwise),
// and then return what it knows about the source; examples are streamed to
// disk as they come, so a large ingest is never held in memory.
//
// If produce or yield fails, ctx ends, or there are no examples, nothing is
// registered and the temporary file is removed. If the content equals an
// existing version of name, that version's manifest is returned with
// created=false; otherwise the new version gets the next seq and the
// previous latest as parent, and created=true.
func (s *Store) Register(ctx context.Context, name string, meta Meta, produce func(yield func(Example) error) (Provenance, error)) (Manifest, bool, error) {
	if err := ValidateName(name); err != nil {
		return Manifest{}, false, err
	}
	if err := meta.Validate(); err != nil {
		return Manifest{}, false, fmt.Errorf("register %s: %w", name, err)
	}
	st, err := s.stage(meta)
	if err != nil {
		return Manifest{}, false, fmt.Errorf("register %s: %w", name, err)
	}
	defer st.abort()
	prov, err := produce(func(e Example) error {
		if err := ctx.Err(); err != nil {
			return err
		}
		return st.write(e)
	})
	if err == nil {
		err = ctx.Err()
	}
	if err == nil && st.vw.Len() == 0 {
		err = errors.New("no examples to register")
	}
	if err == nil {
		err = st.finish()
	}
	if err != nil {
		return Manifest{}, false, fmt.Errorf("register %s: %w", name, err)
	}
	m := Manifest{
		Name:          name,
		ID:            st.dig.Sum(),
		Created:       nowRFC3339(),
		Source:        prov.Source,
		Examples:      st.stats.n,
		Counts:        st.stats.counts,
		ClassPixels:   st.stats.pixels,
		Bytes:         st.size,
		FileSHA256:    hex.EncodeToString(st.fileH.Sum(nil)),
		SchemaVersion: SchemaVersion,
		Meta:          meta,
		Skipped:       prov.Skipped,
		Ignored:       prov.Ignored,
	}
	m, created, err := s.commit(st, m)
	if err != nil {
		return Manifest{}, false, fmt.Errorf("register %s: %w", name, err)
	}
	if created {
		s.log.Debug("registered dataset version", "ref", m.Ref(), "id", ShortID(m.ID), "examples", m.Examples)
	}
	return m, created, nil
}

// commit moves a finished staged file into objects/ (unless that content is
// already there) and writes the manifest, under the store lock.
func (s *Store) commit(st *stagedVersion, m Manifest) (Manifest, bool, error) {
	unlock, err := s.lock()
	if err != nil {
		return Manifest{}, false, err
	}
	defer unlock()
	versions, err := s.versions(m.Name)
	if err != nil {
		return Manifest{}, false, err
	}
	for _, v := range versions {
		if v.ID == m.ID {
			return v, false, nil
		}
	}
	obj := s.DataPath(m.ID)
	switch _, err := os.Stat(obj); {
	case err == nil:
		// Same content under another name (or an imported or orphaned
		// object): keep the existing file and describe it.
		if m.FileSHA256, m.Bytes, err = s.objectDigest(m.ID); err != nil {
			return Manifest{}, false, err
		}
	case errors.Is(err, fs.ErrNotExist):
		if err := os.Rename(st.f.Name(), obj); err != nil {
			return Manifest{}, false, err
		}
		st.done = true
		st.f.Close()
		if err := durable.SyncDir(filepath.Dir(obj)); err != nil {
			return Manifest{}, false, err
		}
	default:
		return Manifest{}, false, err
	}
	m.Seq = 1
	if n := len(versions); n > 0 {
		m.Seq = versions[n-1].Seq + 1
		m.Parent = versions[n-1].ID
	}
	if err := s.writeManifest(m); err != nil {
		return Manifest{}, false, err
	}
	return m, true, nil
}

// objectDigest returns the file SHA-256 and size of an existing object,
// from a manifest that references it or else by hashing the file.
func (s *Store) objectDigest(id string) (string, int64, error) {
	all, err := s.List()
	if err != nil {
		return "", 0, err
	}
	for _, m := range all {
		if m.ID == id && m.FileSHA256 != "" {
			return m.FileSHA256, m.Bytes, nil
		}
	}
	return durable.FileSHA256(s.DataPath(id))
}

func (s *Store) writeManifest(m Manifest) error {
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return err
	}
	dir := filepath.Join(s.dir, namesDir, m.Name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	if err := durable.SyncDir(filepath.Dir(dir)); err != nil {
		return err
	}
	return s.tmp.WriteFile(filepath.Join(dir, m.ID+".json"), append(b, '\n'))
}

// versions returns the manifests of name sorted by seq; none if the name
// does not exist.
func (s *Store) versions(name string) ([]Manifest, error) {
	dir := filepath.Join(s.dir, namesDir, name)
	ents, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []Manifest
	for _, e := range ents {
		if !strings.HasSuffix(e.Name(), ".json") {
			continue
		}
		p := filepath.Join(dir, e.Name())
		b, err := os.ReadFile(p)
		if err != nil {
			return nil, err
		}
		var m Manifest
		if err := json.Unmarshal(b, &m); err != nil {
			return nil, fmt.Errorf("manifest %s: %w", p, err)
		}
		if m.Name != name || m.ID+".json" != e.Name() {
			return nil, fmt.Errorf("manifest %s: names %s@%s, not its own path", p, m.Name, ShortID(m.ID))
		}
		out = append(out, m)
	}
	slices.SortFunc(out, func(a, b Manifest) int { return a.Seq - b.Seq })
	return out, nil
}

// Names lists the dataset names, sorted.
func (s *Store) Names() ([]string, error) {
	ents, err := os.ReadDir(filepath.Join(s.dir, namesDir))
	if err != nil {
		return nil, err
	}
	var out []string
	for _, e := range ents {
		if e.IsDir() && ValidateName(e.Name()) == nil {
			out = append(out, e.Name())
		}
	}
	return out, nil
}

// List returns every version of every dataset, by name and then seq.
func (s *Store) List() ([]Manifest, error) {
	names, err := s.Names()
	if err != nil {
		return nil, fmt.Errorf("list datasets: %w", err)
	}
	var out []Manifest
	for _, n := range names {
		vs, err := s.versions(n)
		if err != nil {
			return nil, fmt.Errorf("list datasets: %w", err)
		}
		out = append(out, vs...)
	}
	return out, nil
}

// Resolve finds the version a reference names (see ParseRef). Unknown names
// and versions give errors wrapping ErrNotFound, id prefixes matching
// several versions ErrAmbiguous; both list what exists.
func (s *Store) Resolve(ref string) (Manifest, error) {
	r, err := ParseRef(ref)
	if err != nil {
		return Manifest{}, err
	}
	vs, err := s.versions(r.Name)
	if err != nil {
		return Manifest{}, fmt.Errorf("resolve %s: %w", ref, err)
	}
	if len(vs) == 0 {
		names, _ := s.Names()
		have := "there are none"
		if len(names) > 0 {
			have = "have: " + strings.Join(names, ", ")
		}
		return Manifest{}, fmt.Errorf("dataset %q: %w (%s)", r.Name, ErrNotFound, have)
	}
	listing := func(ms []Manifest) string {
		parts := make([]string, len(ms))
		for i, m := range ms {
			parts[i] = m.Version() + " " + ShortID(m.ID)
		}
		return strings.Join(parts, ", ")
	}
	switch {
	case r.Latest:
		return vs[len(vs)-1], nil
	case r.Seq > 0:
		for _, m := range vs {
			if m.Seq == r.Seq {
				return m, nil
			}
		}
		return Manifest{}, fmt.Errorf("dataset %s: version v%d %w (versions: %s)", r.Name, r.Seq, ErrNotFound, listing(vs))
	default:
		var hits []Manifest
		for _, m := range vs {
			if strings.HasPrefix(m.ID, r.Prefix) {
				hits = append(hits, m)
			}
		}
		switch len(hits) {
		case 1:
			return hits[0], nil
		case 0:
			return Manifest{}, fmt.Errorf("dataset %s: no version with id prefix %s: %w (versions: %s)", r.Name, r.Prefix, ErrNotFound, listing(vs))
		default:
			return Manifest{}, fmt.Errorf("dataset %s: id prefix %s: %w, matches %s", r.Name, r.Prefix, ErrAmbiguous, listing(hits))
		}
	}
}

// Open resolves ref and opens its version file.
func (s *Store) Open(ref string) (*Version, Manifest, error) {
	m, err := s.Resolve(ref)
	if err != nil {
		return nil, Manifest{}, err
	}
	v, err := OpenVersionFile(s.DataPath(m.ID))
	if err != nil {
		return nil, Manifest{}, fmt.Errorf("dataset %s: %w", m.Ref(), err)
	}
	return v, m, nil
}

// Verify re-reads the version ref names and checks it against its manifest:
// the file's size and SHA-256, that it parses, the content digest (the
// version id), mask values, geometry and per-split counts. Any mismatch
// gives an error wrapping ErrCorrupt that lists every problem found.
func (s *Store) Verify(ctx context.Context, ref string) error {
	m, err := s.Resolve(ref)
	if err != nil {
		return err
	}
	path := s.DataPath(m.ID)
	fail := func(problems []string) error {
		return fmt.Errorf("verify %s (%s, %s): %w: %s", m.Ref(), ShortID(m.ID), path, ErrCorrupt, strings.Join(problems, "; "))
	}
	var problems []string
	sum, size, err := durable.FileSHA256(path)
	if err != nil {
		return fail([]string{fmt.Sprintf("cannot read version file: %v", err)})
	}
	if size != m.Bytes {
		problems = append(problems, fmt.Sprintf("file is %d bytes, manifest says %d", size, m.Bytes))
	}
	if sum != m.FileSHA256 {
		problems = append(problems, fmt.Sprintf("file SHA-256 is %s, manifest says %s", sum, m.FileSHA256))
	}
	v, err := OpenVersionFile(path)
	if err != nil {
		return fail(append(problems, fmt.Sprintf("file does not parse: %v", err)))
	}
	defer v.Close()
	if err := ctx.Err(); err != nil {
		return err
	}
	problems = append(problems, checkContent(ctx, v, m)...)
	if err := ctx.Err(); err != nil {
		return err
	}
	if len(problems) > 0 {
		return fail(problems)
	}
	return nil
}

// checkContent compares an opened version with its manifest.
func checkContent(ctx context.Context, v *Version, m Manifest) []string {
	var problems []string
	meta := v.Meta()
	if got, want := canonicalMetaJSON(meta), canonicalMetaJSON(m.Meta); string(got) != string(want) {
		problems = append(problems, fmt.Sprintf("file geometry %s, manifest says %s", got, want))
	}
	d := NewDigester(meta)
	stats := newContentStats(meta)
	badMask := 0
	for i := range v.Len() {
		if i%64 == 0 && ctx.Err() != nil {
			return nil
		}
		e := v.Example(i)
		if err := e.Validate(meta); err != nil {
			if badMask == 0 {
				problems = append(problems, err.Error())
			}
			badMask++
			continue
		}
		d.Add(e)
		stats.add(e)
	}
	if badMask > 1 {
		problems = append(problems, fmt.Sprintf("%d examples invalid in all", badMask))
	}
	if badMask == 0 {
		if id := d.Sum(); id != m.ID {
			problems = append(problems, fmt.Sprintf("content digest is %s, but the version id is %s", id, m.ID))
		}
	}
	if v.Len() != m.Examples {
		problems = append(problems, fmt.Sprintf("%d examples, manifest says %d", v.Len(), m.Examples))
	}
	for _, sp := range []string{SplitTrain, SplitVal} {
		if got := len(v.SplitIndices(sp)); got != m.Counts[sp] {
			problems = append(problems, fmt.Sprintf("%d %s examples, manifest says %d", got, sp, m.Counts[sp]))
		}
	}
	return problems
}

// Remove deletes the version ref names (its manifest) and, when no other
// manifest references the same content, its version file. It returns the
// removed manifest.
func (s *Store) Remove(ref string) (Manifest, error) {
	unlock, err := s.lock()
	if err != nil {
		return Manifest{}, err
	}
	defer unlock()
	m, err := s.Resolve(ref)
	if err != nil {
		return Manifest{}, err
	}
	mp := s.manifestPath(m.Name, m.ID)
	if err := os.Remove(mp); err != nil {
		return Manifest{}, fmt.Errorf("remove %s: %w", m.Ref(), err)
	}
	dir := filepath.Dir(mp)
	if err := durable.SyncDir(dir); err != nil {
		return Manifest{}, fmt.Errorf("remove %s: %w", m.Ref(), err)
	}
	if ents, err := os.ReadDir(dir); err == nil && len(ents) == 0 {
		os.Remove(dir)
	}
	all, err := s.List()
	if err != nil {
		return m, fmt.Errorf("remove %s: %w", m.Ref(), err)
	}
	for _, o := range all {
		if o.ID == m.ID {
			return m, nil
		}
	}
	if err := os.Remove(s.DataPath(m.ID)); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return m, fmt.Errorf("remove %s: version file: %w", m.Ref(), err)
	}
	s.log.Debug("removed dataset version", "ref", m.Ref(), "id", ShortID(m.ID))
	return m, nil
}

// ImportFile registers the version file at path (for example one pulled
// from another store) as a version of name. The file is read, every example
// checked, and rewritten canonically, so a damaged or foreign file is
// refused; if wantID is not empty the content must have that version id
// (ErrCorrupt otherwise). src.Kind defaults to "import" and src.Path to path.
func (s *Store) ImportFile(ctx context.Context, name, path, wantID string, src Source) (Manifest, bool, error) {
	v, err := OpenVersionFile(path)
	if err != nil {
		return Manifest{}, false, fmt.Errorf("import %s: %w", path, err)
	}
	defer v.Close()
	if wantID != "" {
		if id := ContentID(v); id != wantID {
			return Manifest{}, false, fmt.Errorf("import %s: %w: content id %s, want %s", path, ErrCorrupt, id, wantID)
		}
	}
	if src.Kind == "" {
		src.Kind = SourceImport
	}
	if src.Path == "" {
		src.Path = path
	}
	return s.Register(ctx, name, v.Meta(), func(yield func(Example) error) (Provenance, error) {
		for i := range v.Len() {
			if err := yield(v.Example(i)); err != nil {
				return Provenance{}, err
			}
		}
		return Provenance{Source: src}, nil
	})
}

// HasObject reports whether the version file with the given id is present.
func (s *Store) HasObject(id string) bool {
	if !ValidID(id) {
		return false
	}
	_, err := os.Stat(s.DataPath(id))
	return err == nil
}

// PutObject adds the version file at path to the store's objects without
// naming it, as a cache keyed by version id does (a Flight client after a
// download). The file is opened, its examples validated and its content id
// computed; it must equal wantID when that is given (ErrCorrupt otherwise).
// The bytes are copied unchanged, so the file SHA-256 stays the sender's.
// It returns the id. Unnamed objects are removed only by hand.
func (s *Store) PutObject(ctx context.Context, path, wantID string) (string, error) {
	v, err := OpenVersionFile(path)
	if err != nil {
		return "", fmt.Errorf("put object %s: %w", path, err)
	}
	meta := v.Meta()
	d := NewDigester(meta)
	for i := range v.Len() {
		if i%64 == 0 && ctx.Err() != nil {
			v.Close()
			return "", ctx.Err()
		}
		e := v.Example(i)
		if err := e.Validate(meta); err != nil {
			v.Close()
			return "", fmt.Errorf("put object %s: %w: %v", path, ErrCorrupt, err)
		}
		d.Add(e)
	}
	v.Close()
	id := d.Sum()
	if wantID != "" && id != wantID {
		return "", fmt.Errorf("put object %s: %w: content id %s, want %s", path, ErrCorrupt, id, wantID)
	}
	if s.HasObject(id) {
		return id, nil
	}
	if err := s.copyObject(path, id); err != nil {
		return "", fmt.Errorf("put object %s: %w", path, err)
	}
	return id, nil
}

func (s *Store) copyObject(path, id string) error {
	in, err := os.Open(path)
	if err != nil {
		return err
	}
	defer in.Close()
	f, err := s.tmp.Create("object-*.arrow")
	if err != nil {
		return err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	if _, err := io.Copy(f, in); err != nil {
		return err
	}
	if err := f.Sync(); err != nil {
		return err
	}
	unlock, err := s.lock()
	if err != nil {
		return err
	}
	defer unlock()
	if err := os.Rename(f.Name(), s.DataPath(id)); err != nil {
		return err
	}
	return durable.SyncDir(filepath.Join(s.dir, objectsDir))
}

// OpenObject opens the version file with the given id, named or not.
func (s *Store) OpenObject(id string) (*Version, error) {
	if !ValidID(id) {
		return nil, fmt.Errorf("%w: version id %q is not 64 hex digits", ErrBadRef, id)
	}
	if !s.HasObject(id) {
		return nil, fmt.Errorf("version %s: %w", ShortID(id), ErrNotFound)
	}
	return OpenVersionFile(s.DataPath(id))
}
