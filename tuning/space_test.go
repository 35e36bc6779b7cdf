package tuning

import (
	"encoding/json"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
)

func TestSpaceValidate(t *testing.T) {
	tests := []struct {
		name string
		p    Param
		want string // "" for valid
	}{
		{"uniform", Param{Name: "x", Type: Uniform, Low: -1, High: 1}, ""},
		{"single point", Param{Name: "x", Type: Uniform, Low: 1, High: 1}, ""},
		{"loguniform", Param{Name: "lr", Type: LogUniform, Low: 1e-4, High: 1e-1}, ""},
		{"int log", Param{Name: "b", Type: Int, Low: 1, High: 64, Log: true}, ""},
		{"choice", Param{Name: "o", Type: Choice, Values: []Value{String("adam"), String("sgd")}}, ""},
		{"choice mixed numbers", Param{Name: "w", Type: Choice, Values: []Value{IntValue(0), Float(0.5)}}, ""},
		{"no type", Param{Name: "x"}, "invalid search space: x: type is required (uniform, loguniform, int or choice)"},
		{"low above high", Param{Name: "x", Type: Uniform, Low: 2, High: 1}, "invalid search space: x: low 2 is above high 1"},
		{"inf", Param{Name: "x", Type: Uniform, Low: math.Inf(-1), High: 1}, "invalid search space: x: low and high must be finite numbers, got -Inf and 1"},
		{"loguniform zero", Param{Name: "lr", Type: LogUniform, Low: 0, High: 1}, "invalid search space: lr: loguniform needs low > 0, got 0"},
		{"log on uniform", Param{Name: "x", Type: Uniform, High: 1, Log: true}, "invalid search space: x: log applies to type int only (use loguniform)"},
		{"int fraction", Param{Name: "b", Type: Int, Low: 1.5, High: 3}, "invalid search space: b: int bounds must be integers, got 1.5 and 3"},
		{"int log zero", Param{Name: "b", Type: Int, Low: 0, High: 3, Log: true}, "invalid search space: b: int with log needs low >= 1, got 0"},
		{"choice empty", Param{Name: "o", Type: Choice}, "invalid search space: o: choice needs at least one value"},
		{"choice dup", Param{Name: "o", Type: Choice, Values: []Value{IntValue(1), Float(1)}}, "invalid search space: o: value 1 is listed twice"},
		{"choice dup named once", Param{Name: "o", Type: Choice, Values: []Value{String("a"), String("a"), String("b"), String("a")}}, "invalid search space: o: value a is listed twice"},
		{"choice zero and minus zero", Param{Name: "o", Type: Choice, Values: []Value{Float(0), Float(math.Copysign(0, -1))}}, "invalid search space: o: value -0 is listed twice"},
		{"choice with low", Param{Name: "o", Type: Choice, Low: 1, Values: []Value{Bool(true)}}, "invalid search space: o: low, high and log do not apply to type choice"},
		{"values on range", Param{Name: "x", Type: Uniform, High: 1, Values: []Value{Float(1)}}, "invalid search space: x: values apply to type choice only"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := NewSpace(tt.p)
			switch {
			case tt.want == "" && err != nil:
				t.Fatalf("unexpected error %v", err)
			case tt.want != "" && (err == nil || err.Error() != tt.want):
				t.Fatalf("error %v, want %q", err, tt.want)
			case err != nil && !errors.Is(err, ErrInvalidSpace):
				t.Fatalf("error does not wrap ErrInvalidSpace")
			}
		})
	}
	if _, err := NewSpace(); err == nil || err.Error() != "invalid search space: no parameters" {
		t.Fatalf("empty space: %v", err)
	}
	x := Param{Name: "x", Type: Uniform, High: 1}
	if _, err := NewSpace(x, x); err == nil || err.Error() != "invalid search space: x: duplicate parameter" {
		t.Fatalf("duplicate: %v", err)
	}
	s, err := NewSpace(Param{Name: "z", Type: Uniform, High: 1}, x)
	if err != nil || strings.Join(s.Names(), ",") != "x,z" {
		t.Fatalf("NewSpace sorts: %v %v", s.Names(), err)
	}
}

func TestValueJSONRoundTrip(t *testing.T) {
	p := Params{"a": Float(1), "b": IntValue(1), "c": String("adam"), "d": Bool(true), "e": Float(1e-5), "f": Float(0.30000000000000004)}
	data, err := json.Marshal(p)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"a":1.0,"b":1,"c":"adam","d":true,"e":1e-05,"f":0.30000000000000004}`; string(data) != want {
		t.Fatalf("json %s, want %s", data, want)
	}
	var back Params
	if err := json.Unmarshal(data, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, p) {
		t.Fatalf("round trip %v, want %v", back, p)
	}
	if p.String() != "a=1 b=1 c=adam d=true e=1e-05 f=0.30000000000000004" {
		t.Fatalf("String %q", p.String())
	}
}
