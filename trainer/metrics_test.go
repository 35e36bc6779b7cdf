package trainer

import (
	"math"
	"testing"
)

func TestConfusionMetrics(t *testing.T) {
	tests := []struct {
		name        string
		classes     int
		truth, pred []uint8
		acc, miou   float64
		iou         []float64
		present     []bool
	}{
		{
			name:    "perfect",
			classes: 3,
			truth:   []uint8{0, 1, 2, 2},
			pred:    []uint8{0, 1, 2, 2},
			acc:     1, miou: 1,
			iou:     []float64{1, 1, 1},
			present: []bool{true, true, true},
		},
		{
			// class 0: tp 1, fp 1 (a 1 called 0), fn 1 (a 0 called 2): 1/3
			// class 1: tp 1, fp 0, fn 1: 1/2
			// class 2: tp 1, fp 1, fn 0: 1/2
			name:    "mixed",
			classes: 3,
			truth:   []uint8{0, 0, 1, 1, 2},
			pred:    []uint8{0, 2, 1, 0, 2},
			acc:     3.0 / 5,
			iou:     []float64{1.0 / 3, 0.5, 0.5},
			miou:    (1.0/3 + 0.5 + 0.5) / 3,
			present: []bool{true, true, true},
		},
		{
			// class 2 is absent from truth and prediction: excluded from the mean.
			name:    "absent class excluded",
			classes: 3,
			truth:   []uint8{0, 0, 1, 1},
			pred:    []uint8{0, 1, 1, 1},
			acc:     0.75,
			iou:     []float64{0.5, 2.0 / 3, 0},
			miou:    (0.5 + 2.0/3) / 2,
			present: []bool{true, true, false},
		},
		{
			// class 1 predicted but never true: present with IoU 0.
			name:    "false positive only",
			classes: 2,
			truth:   []uint8{0, 0},
			pred:    []uint8{0, 1},
			acc:     0.5,
			iou:     []float64{0.5, 0},
			miou:    0.25,
			present: []bool{true, true},
		},
		{
			name:    "empty",
			classes: 2,
			iou:     []float64{0, 0},
			present: []bool{false, false},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := NewConfusion(tt.classes)
			// Split the mask in two halves to exercise accumulation.
			h := len(tt.truth) / 2
			if err := c.Add(tt.truth[:h], tt.pred[:h]); err != nil {
				t.Fatal(err)
			}
			if err := c.Add(tt.truth[h:], tt.pred[h:]); err != nil {
				t.Fatal(err)
			}
			m := c.Metrics()
			if math.Abs(m.PixelAccuracy-tt.acc) > 1e-12 {
				t.Errorf("pixel accuracy = %v, want %v", m.PixelAccuracy, tt.acc)
			}
			if math.Abs(m.MeanIoU-tt.miou) > 1e-12 {
				t.Errorf("mIoU = %v, want %v", m.MeanIoU, tt.miou)
			}
			for k := range tt.iou {
				if math.Abs(m.IoU[k]-tt.iou[k]) > 1e-12 || m.Present[k] != tt.present[k] {
					t.Errorf("class %d: IoU %v present %v, want %v %v", k, m.IoU[k], m.Present[k], tt.iou[k], tt.present[k])
				}
			}
			if m.Pixels != int64(len(tt.truth)) {
				t.Errorf("pixels = %d, want %d", m.Pixels, len(tt.truth))
			}
		})
	}
}

func TestConfusionLossAndMerge(t *testing.T) {
	a := NewConfusion(2)
	b := NewConfusion(2)
	a.AddLoss(1.0, 10) // sum 10
	b.AddLoss(0.5, 30) // sum 15
	if err := b.Add([]uint8{1}, []uint8{1}); err != nil {
		t.Fatal(err)
	}
	a.Merge(b)
	m := a.Metrics()
	if math.Abs(m.Loss-25.0/40) > 1e-12 {
		t.Errorf("loss = %v, want %v", m.Loss, 25.0/40)
	}
	if m.Examples != 1 || a.Counts[3] != 1 {
		t.Errorf("merge: examples %d counts %v", m.Examples, a.Counts)
	}
	a.Reset()
	if m := a.Metrics(); m.Pixels != 0 || m.Loss != 0 || m.Examples != 0 {
		t.Errorf("after Reset: %+v", m)
	}
}

func TestConfusionRejects(t *testing.T) {
	c := NewConfusion(2)
	if err := c.Add([]uint8{0, 1}, []uint8{0}); err == nil {
		t.Error("length mismatch accepted")
	}
	if err := c.Add([]uint8{2}, []uint8{0}); err == nil {
		t.Error("class out of range accepted")
	}
}

func TestArgmaxNCHW(t *testing.T) {
	// 2 classes × 3 pixels: class-major.
	logits := []float32{
		1, 5, float32(math.NaN()),
		2, 5, 0,
	}
	mask := make([]uint8, 3)
	argmaxNCHW(mask, logits, 2, 3)
	want := []uint8{1, 0, 1} // tie → lower class; NaN never wins
	for i := range want {
		if mask[i] != want[i] {
			t.Fatalf("mask = %v, want %v", mask, want)
		}
	}
}
