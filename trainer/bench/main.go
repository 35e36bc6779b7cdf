// Command bench measures trainctl's UNet-S engine beside the PyTorch reference
// in one run, on the same machine and thread count, and prints both with the
// ratio:
//
//	go run ./trainer/bench -threads 2
//
// It times training steps (forward, softmax cross-entropy, backward, Adam lr
// 1e-3) at batch 8 and 32 and inference (forward and argmax) at batch 1 and
// 8, on random inputs, after warm-up; each figure is the median over the
// timed iterations. Then it runs unet_torch.py (this directory) with Debian's
// /usr/bin/python3 (python3-torch), the same thread count pinned through
// torch.set_num_threads and OMP_NUM_THREADS, and parses its "torch ..."
// lines. Finally it measures the peak RSS of training at batch 8 for both, each
// in a child process (getrusage's ru_maxrss of the child). Every figure is
// also printed as a machine-readable "go ..." / "torch ..." line, so the
// output can be pasted into BENCHMARKS.md as it is.
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/trainctl/trainctl/trainer/gemm"
	"github.com/trainctl/trainctl/trainer/optim"
	"github.com/trainctl/trainctl/trainer/unet"
)

type options struct {
	threads    int
	python     string
	script     string
	warmup     int
	steps      int
	iters      int
	trainBatch []int
	inferBatch []int
	noTorch    bool
	noRSS      bool
	child      string // internal: "train" runs training steps for the RSS probe
	childBatch int
}

func main() {
	o := options{}
	flag.IntVar(&o.threads, "threads", runtime.NumCPU(), "threads for both engines")
	flag.StringVar(&o.python, "python", "/usr/bin/python3", "Python interpreter with torch")
	flag.StringVar(&o.script, "script", "", "path of unet_torch.py (default: next to this source, trainer/bench)")
	flag.IntVar(&o.warmup, "warmup", 2, "untimed iterations before timing")
	flag.IntVar(&o.steps, "steps", 8, "timed training steps per batch size")
	flag.IntVar(&o.iters, "iters", 20, "timed inference batches per batch size")
	train := flag.String("train-batches", "8,32", "training batch sizes")
	infer := flag.String("infer-batches", "1,8", "inference batch sizes")
	flag.BoolVar(&o.noTorch, "no-torch", false, "skip the PyTorch reference")
	flag.BoolVar(&o.noRSS, "no-rss", false, "skip the peak-RSS probes")
	flag.StringVar(&o.child, "child", "", "internal: run as a measured child")
	flag.IntVar(&o.childBatch, "child-batch", 8, "internal: batch of the child")
	flag.Parse()
	var err error
	if o.trainBatch, err = ints(*train); err == nil {
		o.inferBatch, err = ints(*infer)
	}
	if err == nil {
		if o.child != "" {
			err = runChild(o)
		} else {
			err = run(context.Background(), o, os.Stdout)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "bench:", err)
		os.Exit(1)
	}
}

func ints(s string) ([]int, error) {
	var out []int
	for _, f := range strings.Split(s, ",") {
		if f = strings.TrimSpace(f); f == "" {
			continue
		}
		n, err := strconv.Atoi(f)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("batch size %q", f)
		}
		out = append(out, n)
	}
	return out, nil
}

// measurement is one figure of one engine.
type measurement struct {
	kind  string // train or infer
	batch int
	ips   float64 // images per second
	ms    float64 // median milliseconds per step (train) or batch (infer)
}

func key(kind string, batch int) string { return kind + "/" + strconv.Itoa(batch) }

func run(ctx context.Context, o options, w io.Writer) error {
	fmt.Fprintf(w, "go version=%s threads=%d gomaxprocs=%d cpus=%d\n", runtime.Version(), o.threads, runtime.GOMAXPROCS(0), runtime.NumCPU())
	script := o.script
	if script == "" {
		script = defaultScript()
	}
	// The RSS probes run first: a child started with vfork+exec inherits the
	// parent's peak RSS as its floor (Linux keeps the pre-exec high-water
	// mark), so the parent must still be small.
	var goRSS, torchRSS float64
	if !o.noRSS {
		self, err := os.Executable()
		if err != nil {
			return err
		}
		rss, err := childRSS(ctx, exec.CommandContext(ctx, self, "-child", "train", "-child-batch", "8",
			"-threads", strconv.Itoa(o.threads), "-steps", "3", "-warmup", "0"))
		if err != nil {
			return fmt.Errorf("go RSS probe: %w", err)
		}
		goRSS = rss
		fmt.Fprintf(w, "go kind=rss batch=8 threads=%d peak_rss_mib=%.1f\n", o.threads, rss)
		if !o.noTorch {
			cmd := exec.CommandContext(ctx, o.python, script, "--threads", strconv.Itoa(o.threads),
				"--only", "train", "--train-batches", "8", "--steps", "3", "--warmup", "0")
			rss, err := childRSS(ctx, cmd)
			if err != nil {
				return fmt.Errorf("torch RSS probe: %w", err)
			}
			torchRSS = rss
			fmt.Fprintf(w, "torch kind=rss batch=8 threads=%d peak_rss_mib=%.1f\n", o.threads, rss)
		}
	}

	goRes := map[string]measurement{}
	for _, b := range o.trainBatch {
		m, err := goTrain(o, b)
		if err != nil {
			return err
		}
		goRes[key("train", b)] = m
		fmt.Fprintf(w, "go kind=train batch=%d threads=%d images_per_s=%.3f ms_per_step=%.2f steps=%d\n", b, o.threads, m.ips, m.ms, o.steps)
	}
	for _, b := range o.inferBatch {
		m, err := goInfer(o, b)
		if err != nil {
			return err
		}
		goRes[key("infer", b)] = m
		fmt.Fprintf(w, "go kind=infer batch=%d threads=%d ms_per_batch=%.2f images_per_s=%.3f iters=%d\n", b, o.threads, m.ms, m.ips, o.iters)
	}
	torchRes := map[string]measurement{}
	if !o.noTorch {
		out, err := runTorch(ctx, o, script, w)
		if err != nil {
			return err
		}
		torchRes = out
	}
	fmt.Fprintln(w)
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "UNet-S 3x128x128\tgo\ttorch\tgo/torch\t")
	row := func(label string, g, t float64, unit string) {
		ratio, ts := "-", "-"
		if t > 0 {
			ts = fmt.Sprintf("%.2f", t)
			ratio = fmt.Sprintf("%.2f", g/t)
		}
		fmt.Fprintf(tw, "%s %s\t%.2f\t%s\t%s\t\n", label, unit, g, ts, ratio)
	}
	for _, b := range o.trainBatch {
		k := key("train", b)
		row(fmt.Sprintf("train batch %d", b), goRes[k].ips, torchRes[k].ips, "images/s")
	}
	for _, b := range o.inferBatch {
		k := key("infer", b)
		row(fmt.Sprintf("infer batch %d", b), goRes[k].ms, torchRes[k].ms, "ms")
	}
	if !o.noRSS {
		row("train batch 8 peak RSS", goRSS, torchRSS, "MiB")
	}
	return tw.Flush()
}

// defaultScript finds unet_torch.py beside this source file, from the working
// directory (the repository root or trainer/bench).
func defaultScript() string {
	for _, p := range []string{"trainer/bench/unet_torch.py", "unet_torch.py", "bench/unet_torch.py"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return filepath.Join("trainer", "bench", "unet_torch.py")
}

// runTorch runs the reference script, echoing its lines, and parses them.
func runTorch(ctx context.Context, o options, script string, w io.Writer) (map[string]measurement, error) {
	cmd := exec.CommandContext(ctx, o.python, script,
		"--threads", strconv.Itoa(o.threads),
		"--train-batches", joinInts(o.trainBatch), "--infer-batches", joinInts(o.inferBatch),
		"--warmup", strconv.Itoa(o.warmup), "--steps", strconv.Itoa(o.steps), "--iters", strconv.Itoa(o.iters))
	cmd.Env = append(os.Environ(), "OMP_NUM_THREADS="+strconv.Itoa(o.threads), "MKL_NUM_THREADS="+strconv.Itoa(o.threads))
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w\n%s", o.python, script, err, stderr.String())
	}
	res := map[string]measurement{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		fmt.Fprintln(w, line)
		kv := fields(line)
		b, _ := strconv.Atoi(kv["batch"])
		ips, _ := strconv.ParseFloat(kv["images_per_s"], 64)
		switch kv["kind"] {
		case "train":
			ms, _ := strconv.ParseFloat(kv["ms_per_step"], 64)
			res[key("train", b)] = measurement{kind: "train", batch: b, ips: ips, ms: ms}
		case "infer":
			ms, _ := strconv.ParseFloat(kv["ms_per_batch"], 64)
			res[key("infer", b)] = measurement{kind: "infer", batch: b, ips: ips, ms: ms}
		}
	}
	return res, nil
}

// fields parses "name k=v k=v" into a map.
func fields(line string) map[string]string {
	kv := map[string]string{}
	for _, f := range strings.Fields(line) {
		if k, v, ok := strings.Cut(f, "="); ok {
			kv[k] = v
		}
	}
	return kv
}

func joinInts(xs []int) string {
	s := make([]string, len(xs))
	for i, x := range xs {
		s[i] = strconv.Itoa(x)
	}
	return strings.Join(s, ",")
}

// newModel builds UNet-S for batch with random inputs and labels.
func newModel(threads, batch int) (*unet.Model, []float32, []uint8, error) {
	cfg := unet.DefaultConfig()
	m, err := unet.New(cfg, gemm.New(threads), batch)
	if err != nil {
		return nil, nil, nil, err
	}
	m.Init(1)
	r := rand.New(rand.NewPCG(uint64(batch), 2))
	hw := cfg.Height * cfg.Width
	x := make([]float32, batch*cfg.InChannels*hw)
	for i := range x {
		x[i] = r.Float32()
	}
	labels := make([]uint8, batch*hw)
	for i := range labels {
		labels[i] = uint8(r.IntN(cfg.Classes))
	}
	return m, x, labels, nil
}

// timeIt runs f warmup times, then n timed times, and returns the median
// duration.
func timeIt(warmup, n int, f func()) time.Duration {
	for i := 0; i < warmup; i++ {
		f()
	}
	ds := make([]time.Duration, n)
	for i := range ds {
		t0 := time.Now()
		f()
		ds[i] = time.Since(t0)
	}
	slices.Sort(ds)
	if n%2 == 1 {
		return ds[n/2]
	}
	return (ds[n/2-1] + ds[n/2]) / 2
}

func goTrain(o options, batch int) (measurement, error) {
	m, x, labels, err := newModel(o.threads, batch)
	if err != nil {
		return measurement{}, err
	}
	defer m.Close()
	opt, err := optim.New(optim.DefaultConfig(), len(m.Params))
	if err != nil {
		return measurement{}, err
	}
	d := timeIt(o.warmup, max(o.steps, 1), func() {
		m.Forward(x, batch)
		m.LossAndBackward(labels, batch)
		opt.Step(m.Params, m.Grads)
	})
	return measurement{kind: "train", batch: batch, ips: float64(batch) / d.Seconds(), ms: float64(d.Microseconds()) / 1e3}, nil
}

func goInfer(o options, batch int) (measurement, error) {
	m, x, _, err := newModel(o.threads, batch)
	if err != nil {
		return measurement{}, err
	}
	defer m.Close()
	k, hw := m.Config.Classes, m.Config.Height*m.Config.Width
	mask := make([]uint8, hw)
	d := timeIt(o.warmup, max(o.iters, 1), func() {
		logits := m.Forward(x, batch)
		for i := 0; i < batch; i++ {
			argmax(mask, logits[i*k*hw:(i+1)*k*hw], k, hw)
		}
	})
	return measurement{kind: "infer", batch: batch, ips: float64(batch) / d.Seconds(), ms: float64(d.Microseconds()) / 1e3}, nil
}

// argmax is the per-pixel class choice of trainer's Predict.
func argmax(mask []uint8, logits []float32, k, hw int) {
	for i := 0; i < hw; i++ {
		best, bv := 0, logits[i]
		for c := 1; c < k; c++ {
			if v := logits[c*hw+i]; v > bv {
				best, bv = c, v
			}
		}
		mask[i] = uint8(best)
	}
}

// runChild is the measured child of the RSS probe: a few training steps.
func runChild(o options) error {
	if o.child != "train" {
		return fmt.Errorf("unknown -child %q", o.child)
	}
	_, err := goTrain(o, o.childBatch)
	return err
}
