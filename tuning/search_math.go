package tuning

import "math"

// The searchers' transcendental functions. math.Exp on amd64 takes an FMA
// code path on CPUs that have FMA and another one elsewhere, with results
// that may differ in the last bit, and math.Pow and math.Erf call it; so
// the searchers use exp and phi below, written in plain float64 operations
// (products rounded by explicit conversions, which forbids the compiler to
// fuse them), and only those math functions whose result does not depend
// on the CPU (Log, Sqrt, Cos, Floor, Round, Ldexp). A suggestion is then a
// function of its inputs on every machine of one GOARCH.

// exp returns e**x: fdlibm's algorithm (argument reduction by ln 2 and a
// degree-5 minimax polynomial), within an ulp or so of math.Exp.
func exp(x float64) float64 {
	const (
		ln2Hi = 6.93147180369123816490e-01
		ln2Lo = 1.90821492927058770002e-10
		log2e = 1.44269504088896338700e+00
		p1    = 1.66666666666666657415e-01
		p2    = -2.77777777770155933842e-03
		p3    = 6.61375632143793436117e-05
		p4    = -1.65339022054652515390e-06
		p5    = 4.13813679705723846039e-08

		overflow  = 7.09782712893383973096e+02
		underflow = -7.45133219101941108420e+02
		nearZero  = 1.0 / (1 << 28)
	)
	switch {
	case math.IsNaN(x) || math.IsInf(x, 1):
		return x
	case math.IsInf(x, -1):
		return 0
	case x > overflow:
		return math.Inf(1)
	case x < underflow:
		return 0
	case -nearZero < x && x < nearZero:
		return 1 + x
	}
	var k int
	switch {
	case x < 0:
		k = int(float64(log2e*x) - 0.5)
	case x > 0:
		k = int(float64(log2e*x) + 0.5)
	}
	hi := x - float64(float64(k)*ln2Hi)
	lo := float64(float64(k) * ln2Lo)
	r := hi - lo
	t := float64(r * r)
	poly := p4 + float64(t*p5)
	poly = p3 + float64(t*poly)
	poly = p2 + float64(t*poly)
	poly = p1 + float64(t*poly)
	c := r - float64(t*poly)
	y := 1 - ((lo - float64(r*c)/(2-c)) - hi)
	return math.Ldexp(y, k)
}

// phi is the standard normal CDF, from the erf approximation 7.1.26 of
// Abramowitz and Stegun (absolute error below 1.5e-7, ample for the
// truncation masses of Parzen kernels).
func phi(z float64) float64 {
	const (
		p  = 0.3275911
		a1 = 0.254829592
		a2 = -0.284496736
		a3 = 1.421413741
		a4 = -1.453152027
		a5 = 1.061405429
	)
	x := math.Abs(z) / math.Sqrt2
	t := 1 / (1 + float64(p*x))
	poly := a4 + float64(t*a5)
	poly = a3 + float64(t*poly)
	poly = a2 + float64(t*poly)
	poly = a1 + float64(t*poly)
	erf := 1 - float64(float64(t*poly)*exp(-float64(x*x)))
	if z < 0 {
		return 0.5 * (1 - erf)
	}
	return 0.5 * (1 + erf)
}
