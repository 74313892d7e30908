package tensorio

import (
	"bytes"
	"math"
	"math/rand/v2"
	"strings"
	"testing"

	"github.com/lowrank/lowrank"
)

func readJSONString(s string) (*Tensor, error) {
	return ReadTensor(strings.NewReader(s), int64(len(s)), "")
}

func TestJSONForms(t *testing.T) {
	for _, c := range []struct {
		in    string
		dt    DType
		shape []int
		data  []float64
	}{
		{`{"shape":[2,3],"data":[1,2,3,4,5,6]}`, F64, []int{2, 3}, []float64{1, 2, 3, 4, 5, 6}},
		{`{"data":[[1,2,3],[4,5,6]]}`, F64, []int{2, 3}, []float64{1, 2, 3, 4, 5, 6}},
		{` [[1,2],[3,4],[5,6]] `, F64, []int{3, 2}, []float64{1, 2, 3, 4, 5, 6}},
		{`{"data":[[1,2],[3,4]],"shape":[2,2],"dtype":"f32","name":"w"}`, F32, []int{2, 2}, []float64{1, 2, 3, 4}},
		{`{"data":[1.5e-3,-2,"NaN","Infinity","-Infinity"]}`, F64, []int{5}, []float64{1.5e-3, -2, math.NaN(), math.Inf(1), math.Inf(-1)}},
		{`{"shape":[],"data":[7]}`, F64, []int{}, []float64{7}},
		{`{"data":7}`, F64, []int{}, []float64{7}},
		{`{"shape":[2,0],"data":[]}`, F64, []int{2, 0}, []float64{}},
		{`[[],[]]`, F64, []int{2, 0}, []float64{}},
		{`[]`, F64, []int{0}, []float64{}},
		{`[[[1],[2]],[[3],[4]]]`, F64, []int{2, 2, 1}, []float64{1, 2, 3, 4}},
		{`{"dtype":"F16","data":[1.0009765625, 65520]}`, F16, []int{2}, []float64{1.0009765625, math.Inf(1)}},
		{`{"dtype":"BF16","data":[1.00390625]}`, BF16, []int{1}, []float64{1}},
	} {
		got, err := readJSONString(c.in)
		if err != nil {
			t.Errorf("%s: %v", c.in, err)
			continue
		}
		if got.DType != c.dt || !equalInts(got.Shape, c.shape) {
			t.Errorf("%s: %s %v, want %s %v", c.in, got.DType, got.Shape, c.dt, c.shape)
			continue
		}
		for i, w := range c.data {
			var g float64
			if got.F64 != nil {
				g = got.F64[i]
			} else {
				g = float64(got.F32[i])
			}
			if g != w && !(math.IsNaN(g) && math.IsNaN(w)) {
				t.Errorf("%s: element %d = %v, want %v", c.in, i, g, w)
			}
		}
	}
}

func TestJSONBad(t *testing.T) {
	for _, c := range []struct {
		in    string
		code  string
		frags []string
	}{
		{`{"shape":[2,2],"data":[1,2,3]}`, lowrank.EINVALID, []string{"json:", "shape [2,2] needs 4 values, data holds 3"}},
		{`{"shape":[4],"data":[[1,2],[3,4]]}`, lowrank.EINVALID, []string{"does not match"}},
		{`[[1,2],[3]]`, lowrank.EINVALID, []string{"ragged"}},
		{`[[1,2],3]`, lowrank.EINVALID, []string{"ragged"}},
		{`[1,[2]]`, lowrank.EINVALID, []string{"ragged"}},
		{`{"data":[1,null]}`, lowrank.EINVALID, []string{"expected a number", "null"}},
		{`{"data":[1,"x"]}`, lowrank.EINVALID, []string{"expected a number"}},
		{`{"data":[1e999]}`, lowrank.EINVALID, []string{"out of the float64 range"}},
		{`{"data":[1],"data":[2]}`, lowrank.EINVALID, []string{"duplicate key"}},
		{`{"data":[1],"extra":1}`, lowrank.EINVALID, []string{`unknown key "extra"`}},
		{`{"shape":[1]}`, lowrank.EINVALID, []string{`missing "data"`}},
		{`{"data":[1],"dtype":"I32"}`, lowrank.EUNSUPPORTED, []string{`"I32"`}},
		{`{"data":[1,2]`, lowrank.EINVALID, []string{"ends early"}},
		{`{"data":[1,2]} x`, lowrank.EINVALID, []string{"after the tensor"}},
		{`{"data":[1,2],}`, lowrank.EINVALID, []string{"malformed JSON"}},
		{`{"shape":[-1],"data":[]}`, lowrank.EINVALID, []string{"non-negative"}},
		{`{"shape":[4294967296,4294967296],"data":[]}`, lowrank.ETOOLARGE, []string{"limit"}},
		{strings.Repeat("[", 40) + strings.Repeat("]", 40), lowrank.ETOOLARGE, []string{"nested more than"}},
		{`"just a string"`, lowrank.EUNSUPPORTED, []string{"unrecognised"}},
	} {
		_, err := readJSONString(c.in)
		wantErr(t, c.in, err, c.code, c.frags...)
	}
	big := "[" + strings.Repeat("1,", 100) + "1]"
	_, err := Limits{MaxJSONBytes: 100}.ReadTensor(strings.NewReader(big), int64(len(big)), "")
	wantErr(t, "size limit", err, lowrank.ETOOLARGE, "limit of 100")
	_, err = Limits{MaxElements: 10}.ReadTensor(strings.NewReader(big), int64(len(big)), "")
	wantErr(t, "element limit", err, lowrank.ETOOLARGE, "limit of 10 elements")
}

func TestJSONRoundTrip(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 10))
	for _, dt := range []DType{F16, BF16, F32, F64} {
		for _, shape := range testShapes {
			want := randTensor(rng, "x", dt, shape)
			var buf bytes.Buffer
			if err := WriteJSON(&buf, want); err != nil {
				t.Fatal(err)
			}
			got, err := ReadTensor(bytes.NewReader(buf.Bytes()), int64(buf.Len()), "x")
			if err != nil {
				t.Fatalf("%s %v: %v\n%s", dt, shape, err, buf.Bytes())
			}
			if err := sameTensor(got, want); err != nil {
				t.Errorf("%s %v: %v", dt, shape, err)
			}
		}
	}
	var buf bytes.Buffer
	WriteJSON(&buf, &Tensor{Name: "w", Shape: []int{2}, F32: []float32{0.1, float32(math.NaN())}})
	if want := `{"name":"w","dtype":"F32","shape":[2],"data":[0.1,"NaN"]}` + "\n"; buf.String() != want {
		t.Errorf("WriteJSON = %q, want %q", buf.String(), want)
	}
}
