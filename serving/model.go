package serving

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"image/color"
	"io"
	"math"
	"os"
	"strconv"
	"sync"

	"github.com/trainctl/trainctl/trainer"
)

// maxCheckpointFile bounds the checkpoint file LoadModel reads (1 GiB, as
// trainer.ReadCheckpoint does).
const maxCheckpointFile = 1 << 30

// Model is a loaded checkpoint ready to serve: its network, class names and
// colours, and a version string reported with every prediction. A Server
// runs it from its single batching goroutine; the Model counts the requests
// that hold it so that a model swapped out of a Server releases its engine
// only after its last in-flight batch.
type Model struct {
	version     string
	ckpt        *trainer.Checkpoint
	threads     int
	maxBatch    int
	height      int
	width       int
	channels    int
	classes     []string
	colors      color.Palette
	colorsHex   []string
	runMu       sync.Mutex // one forward pass at a time (a Model may be current in two servers)
	mu          sync.Mutex
	refs        int                // requests holding the model
	live        int                // servers the model is current in
	closed      bool               // Close was called: release the engine for good
	pred        *trainer.Predictor // nil while released
	predCreated int                // predictors built (tests check reuse)
}

// LoadModel reads the checkpoint at path and builds a Model from it (see
// NewModel). An empty version is replaced by the first 12 hex digits of the
// file's SHA-256, so the same file always reports the same version.
func LoadModel(path string, version string, threads int, maxBatch int) (*Model, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("load model: %w", err)
	}
	defer f.Close()
	data, err := io.ReadAll(io.LimitReader(f, maxCheckpointFile+1))
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	if len(data) > maxCheckpointFile {
		return nil, fmt.Errorf("load model %s: %w: larger than the %d-byte limit", path, trainer.ErrCorruptCheckpoint, maxCheckpointFile)
	}
	c, err := trainer.DecodeCheckpoint(data)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	if version == "" {
		sum := sha256.Sum256(data)
		version = hex.EncodeToString(sum[:])[:12]
	}
	m, err := NewModel(c, version, threads, maxBatch)
	if err != nil {
		return nil, fmt.Errorf("load model %s: %w", path, err)
	}
	return m, nil
}

// NewModel builds a Model from a checkpoint already in memory. threads is
// the engine's goroutine count (<= 0: GOMAXPROCS) and maxBatch the most
// images per forward pass (<= 0: 8); larger batches are split. An empty
// version is replaced by the first 12 hex digits of a SHA-256 over the
// checkpoint's model configuration and weights. The model's input must have
// 1 or 3 channels.
func NewModel(c *trainer.Checkpoint, version string, threads, maxBatch int) (*Model, error) {
	if c == nil {
		return nil, fmt.Errorf("new model: nil checkpoint")
	}
	pred, err := trainer.NewPredictor(c, threads, maxBatch)
	if err != nil {
		return nil, fmt.Errorf("new model: %w", err)
	}
	h, w, ch, k := pred.Geometry()
	if ch != 1 && ch != 3 {
		pred.Close()
		return nil, fmt.Errorf("new model: the model takes %d input channels; serving handles 1 (gray) or 3 (RGB)", ch)
	}
	if version == "" {
		version = checkpointDigest(c)
	}
	m := &Model{
		version:     version,
		ckpt:        c,
		threads:     threads,
		maxBatch:    maxBatch,
		height:      h,
		width:       w,
		channels:    ch,
		classes:     classNames(c.Classes, k),
		pred:        pred,
		predCreated: 1,
	}
	m.colors, m.colorsHex = classPalette(m.classes)
	return m, nil
}

// checkpointDigest is the first 12 hex digits of a SHA-256 over the model
// configuration (JSON) and the weights (little-endian float32 bits).
func checkpointDigest(c *trainer.Checkpoint) string {
	h := sha256.New()
	cfg, _ := json.Marshal(c.Model) // a struct of ints: cannot fail
	h.Write(cfg)
	var b [4]byte
	for _, v := range c.Params {
		binary.LittleEndian.PutUint32(b[:], math.Float32bits(v))
		h.Write(b[:])
	}
	return hex.EncodeToString(h.Sum(nil))[:12]
}

// classNames returns k class names: the checkpoint's where it has them,
// "class<i>" for missing, empty or repeated ones (names key the fractions
// of a prediction, so they must be unique).
func classNames(names []string, k int) []string {
	out := make([]string, k)
	seen := make(map[string]bool, k)
	for i := range out {
		n := ""
		if i < len(names) {
			n = names[i]
		}
		if n == "" || seen[n] {
			n = "class" + strconv.Itoa(i)
		}
		seen[n] = true
		out[i] = n
	}
	return out
}

// classColor is the colour of class i named name: the classes of
// dataset.TrimapClasses (the Pet layout and the synthetic shapes) by name,
// whatever their index (pet red, background black, border yellow); any
// other class by index from a fixed cycle.
func classColor(name string, i int) color.RGBA {
	switch name {
	case "pet":
		return color.RGBA{220, 60, 60, 255}
	case "background":
		return color.RGBA{0, 0, 0, 255}
	case "border":
		return color.RGBA{250, 220, 40, 255}
	}
	switch i % 8 {
	case 0:
		return color.RGBA{60, 120, 220, 255}
	case 1:
		return color.RGBA{60, 180, 75, 255}
	case 2:
		return color.RGBA{145, 30, 180, 255}
	case 3:
		return color.RGBA{245, 130, 48, 255}
	case 4:
		return color.RGBA{70, 240, 240, 255}
	case 5:
		return color.RGBA{240, 50, 230, 255}
	case 6:
		return color.RGBA{128, 128, 128, 255}
	}
	return color.RGBA{255, 255, 255, 255}
}

// classPalette is the mask palette (index = class) and the same colours as
// CSS hex strings.
func classPalette(classes []string) (color.Palette, []string) {
	pal := make(color.Palette, len(classes))
	hexes := make([]string, len(classes))
	for i, name := range classes {
		c := classColor(name, i)
		pal[i] = c
		hexes[i] = fmt.Sprintf("#%02x%02x%02x", c.R, c.G, c.B)
	}
	return pal, hexes
}

// Version is the model's version string, reported in X-Model-Version and in
// every prediction.
func (m *Model) Version() string { return m.version }

// ErrModelClosed is wrapped by the error of a prediction on a closed Model.
var ErrModelClosed = errors.New("model closed")

// Close releases the model's engine (its goroutines and buffers): at once
// if no request holds the model, else after the last one is answered,
// even while the model is still current in a Server. Close is final: once
// the engine is released, a prediction on the model fails with
// ErrModelClosed (answered 500) rather than rebuilding the engine, so
// Close a model only once no Server will send it requests. A Server
// releases the engine of a model it swaps out by itself, without closing
// it (it may be swapped in again), so callers need to Close only models
// they never passed to Swap or that are still current when they are done.
// Close is idempotent and returns nil.
func (m *Model) Close() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.closed = true
	if m.refs == 0 {
		m.releaseLocked()
	}
	return nil
}

// acquire records a request holding m.
func (m *Model) acquire() {
	m.mu.Lock()
	m.refs++
	m.mu.Unlock()
}

// release ends a hold taken by acquire; the last one out of a model that is
// closed or no longer current anywhere releases its engine.
func (m *Model) release() {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.refs--
	if m.refs == 0 && (m.live == 0 || m.closed) {
		m.releaseLocked()
	}
}

// setLive counts m in (+1) or out (-1) of a server's current slot; leaving
// the last one with no request holding m releases its engine.
func (m *Model) setLive(delta int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.live += delta
	if m.live == 0 && m.refs == 0 {
		m.releaseLocked()
	}
}

func (m *Model) releaseLocked() {
	if m.pred != nil {
		m.pred.Close()
		m.pred = nil
	}
}

// predict runs one forward pass over images (H×W×C bytes each, at the
// model's input geometry) and returns their class masks, rebuilding the
// engine of a model swapped out and in again; a closed model whose engine
// is released fails with ErrModelClosed. The caller holds a reference
// (acquire), so the engine is not released under the pass.
func (m *Model) predict(ctx context.Context, images [][]byte) ([][]byte, error) {
	m.mu.Lock()
	if m.pred == nil && m.closed {
		m.mu.Unlock()
		return nil, fmt.Errorf("model %s: %w (Close was called on it while it was still served)", m.version, ErrModelClosed)
	}
	if m.pred == nil {
		p, err := trainer.NewPredictor(m.ckpt, m.threads, m.maxBatch)
		if err != nil {
			m.mu.Unlock()
			return nil, fmt.Errorf("model %s: rebuild engine: %w", m.version, err)
		}
		m.pred = p
		m.predCreated++
	}
	p := m.pred
	m.mu.Unlock()
	m.runMu.Lock()
	defer m.runMu.Unlock()
	return p.Predict(ctx, images)
}

// released reports whether m's engine is released (for tests).
func (m *Model) released() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pred == nil
}
