package dataset

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash"
	"io"
	"regexp"
)

// digestDomain starts every content digest, so a version id can never be
// confused with the digest of some other kind of object.
const digestDomain = "trainctl.dataset.v1\n"

// ShortIDLen is the number of hex digits of a version id shown to people.
const ShortIDLen = 12

// MinIDPrefix is the shortest id prefix a reference may use.
const MinIDPrefix = 6

var idPattern = regexp.MustCompile(`^[0-9a-f]{64}$`)

// ValidID reports whether id is a full version id: 64 lowercase hex digits.
func ValidID(id string) bool { return idPattern.MatchString(id) }

// ShortID is the display form of a version id: its first 12 hex digits.
func ShortID(id string) string {
	if len(id) > ShortIDLen {
		return id[:ShortIDLen]
	}
	return id
}

// Digester computes a version id: the hex SHA-256 of a version's canonical
// content, independent of how (or by which Arrow release) the file was
// written. The hashed stream is
//
//	"trainctl.dataset.v1\n"
//	u64be(len(M)) M              where M is the Meta as canonical JSON:
//	                             {"height":H,"width":W,"channels":C,"classes":[...]}
//	for each example in ascending id order:
//	  u64be(len(id)) id  u64be(len(split)) split
//	  u64be(len(image)) image  u64be(len(mask)) mask
//
// Examples must be added in id order; Digester does not sort (VersionWriter
// and Store.Register enforce the order).
type Digester struct {
	h   hash.Hash
	buf [8]byte
	n   int
}

// NewDigester starts the digest of a version with geometry m.
func NewDigester(m Meta) *Digester {
	d := &Digester{h: sha256.New()}
	io.WriteString(d.h, digestDomain)
	d.field(canonicalMetaJSON(m))
	return d
}

// canonicalMetaJSON is Meta as JSON with fixed key order and a non-nil
// classes array; encoding/json is deterministic for this struct.
func canonicalMetaJSON(m Meta) []byte {
	if m.Classes == nil {
		m.Classes = []string{}
	}
	b, err := json.Marshal(m)
	if err != nil {
		// Meta holds only ints and strings; Marshal cannot fail.
		panic(fmt.Sprintf("dataset: marshal meta: %v", err))
	}
	return b
}

func (d *Digester) field(b []byte) {
	binary.BigEndian.PutUint64(d.buf[:], uint64(len(b)))
	d.h.Write(d.buf[:])
	d.h.Write(b)
}

func (d *Digester) stringField(s string) {
	binary.BigEndian.PutUint64(d.buf[:], uint64(len(s)))
	d.h.Write(d.buf[:])
	io.WriteString(d.h, s)
}

// Add hashes one example.
func (d *Digester) Add(e Example) {
	d.stringField(e.ID)
	d.stringField(e.Split)
	d.field(e.Image)
	d.field(e.Mask)
	d.n++
}

// Len is the number of examples added.
func (d *Digester) Len() int { return d.n }

// Sum returns the version id (64 lowercase hex digits) of what was added.
func (d *Digester) Sum() string { return hex.EncodeToString(d.h.Sum(nil)) }

// ContentID returns the version id of an opened version.
func ContentID(v *Version) string {
	d := NewDigester(v.Meta())
	for i := range v.Len() {
		d.Add(v.Example(i))
	}
	return d.Sum()
}
