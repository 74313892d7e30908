package tensorio

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"math"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lowrank/lowrank/internal/pyfind"
)

func runPython(t *testing.T, py, script string, args ...string) string {
	t.Helper()
	cmd := exec.Command(py, append([]string{"-c", script}, args...)...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Run(); err != nil {
		t.Fatalf("python: %v\n%s", err, out.String())
	}
	return out.String()
}

// numpyWriter writes .npy files in every dtype, order, version and a range
// of shapes, .npz archives stored and deflated, and beside each array its
// values as raw little-endian float64 in C order, listed in manifest.json.
const numpyWriter = `
import json, os, sys, warnings
import numpy as np
warnings.simplefilter('ignore')  # overflow to inf in casts is intended
out = sys.argv[1]
man = []
def values(shape):
    n = int(np.prod(shape)) if len(shape) else 1
    v = np.arange(n, dtype=np.float64) * 0.3719 - 2.5
    specials = [np.nan, np.inf, -np.inf, -0.0, 1e-6, 1e-40, 65504.0, 1e-300]
    for i in range(min(n, len(specials))):
        v[(i * 7) % n] = specials[i]
    return v.reshape(shape)
def raw(a, path):
    np.ascontiguousarray(a, dtype='<f8').tofile(path)
shapes = [(), (0,), (5,), (3, 4), (2, 3, 4), (2, 0, 3), (1, 1, 5)]
for ver in [(1, 0), (2, 0), (3, 0)]:
    for dt in ['<f2', '>f2', '<f4', '>f4', '<f8', '>f8']:
        for order in 'CF':
            for si, shape in enumerate(shapes):
                a = values(shape).astype(dt)
                if order == 'F':
                    a = np.asfortranarray(a)
                name = 'v%d_%s_%s_%d' % (ver[0], dt.replace('<', 'le').replace('>', 'be'), order, si)
                with open(os.path.join(out, name + '.npy'), 'wb') as f:
                    np.lib.format.write_array(f, a, version=ver)
                raw(a, os.path.join(out, name + '.raw'))
                man.append({'file': name + '.npy', 'name': '', 'raw': name + '.raw', 'shape': list(a.shape), 'descr': dt})
arrs = {'a': values((3, 4)).astype('<f4'), 'b': np.asfortranarray(values((2, 5)).astype('>f8')), 'c.d': values((7,)).astype('<f2')}
for kind, save in [('savez', np.savez), ('savez_compressed', np.savez_compressed)]:
    save(os.path.join(out, kind + '.npz'), **arrs)
    for k, a in arrs.items():
        raw(a, os.path.join(out, kind + '_' + k + '.raw'))
        man.append({'file': kind + '.npz', 'name': k, 'raw': kind + '_' + k + '.raw', 'shape': list(a.shape), 'descr': a.dtype.str})
# Reference roundings: float32 and float64 values to float16.
rng = np.random.default_rng(17)
f32 = np.concatenate([rng.integers(0, 2**32, 200000, dtype=np.uint64).astype(np.uint32).view(np.float32),
                      (rng.standard_normal(100000) * np.exp2(rng.integers(-30, 20, 100000))).astype(np.float32)])
f32 = f32[~np.isnan(f32)]
f32.astype('<f4').tofile(os.path.join(out, 'round_f32.bin'))
f32.astype(np.float16).astype('<f2').tofile(os.path.join(out, 'round_f32_f16.bin'))
f64 = rng.standard_normal(100000) * np.exp2(rng.integers(-30, 20, 100000))
f64.astype('<f8').tofile(os.path.join(out, 'round_f64.bin'))
f64.astype(np.float16).astype('<f2').tofile(os.path.join(out, 'round_f64_f16.bin'))
json.dump(man, open(os.path.join(out, 'manifest.json'), 'w'))
print(np.__version__)
`

type manifestEntry struct {
	File, Name, Raw, Descr string
	Shape                  []int
}

func readRaw(t *testing.T, path string) []float64 {
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	v := make([]float64, len(b)/8)
	for i := range v {
		v[i] = math.Float64frombits(binary.LittleEndian.Uint64(b[8*i:]))
	}
	return v
}

func TestInteropNumPyWrites(t *testing.T) {
	py := pyfind.Require(t, "numpy")
	dir := t.TempDir()
	ver := runPython(t, py, numpyWriter, dir)
	t.Logf("numpy %s", strings.TrimSpace(ver))
	var man []manifestEntry
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(b, &man); err != nil {
		t.Fatal(err)
	}
	wantDType := map[string]DType{"f2": F16, "f4": F32, "f8": F64}
	for _, m := range man {
		file, err := os.ReadFile(filepath.Join(dir, m.File))
		if err != nil {
			t.Fatal(err)
		}
		got, err := ReadTensor(bytes.NewReader(file), int64(len(file)), m.Name)
		if err != nil {
			t.Errorf("%s %s: %v", m.File, m.Name, err)
			continue
		}
		want := readRaw(t, filepath.Join(dir, m.Raw))
		if got.DType != wantDType[m.Descr[1:]] || !equalInts(got.Shape, m.Shape) || got.Len() != len(want) {
			t.Errorf("%s %s: %s %v, want %s %v", m.File, m.Name, got.DType, got.Shape, m.Descr, m.Shape)
			continue
		}
		for i, w := range want {
			var g float64
			if got.F64 != nil {
				g = got.F64[i]
			} else {
				g = float64(got.F32[i])
			}
			if math.Float64bits(g) != math.Float64bits(w) && !(math.IsNaN(g) && math.IsNaN(w)) {
				t.Errorf("%s %s: element %d = %v, want %v", m.File, m.Name, i, g, w)
				break
			}
		}
	}
	t.Logf("read %d arrays written by NumPy", len(man))
	// Our binary16 rounding agrees with NumPy's on every value.
	for _, c := range []struct{ src, dst string }{{"round_f32.bin", "round_f32_f16.bin"}, {"round_f64.bin", "round_f64_f16.bin"}} {
		src, _ := os.ReadFile(filepath.Join(dir, c.src))
		dst, _ := os.ReadFile(filepath.Join(dir, c.dst))
		is32 := strings.Contains(c.src, "f32")
		n := len(dst) / 2
		if n == 0 {
			t.Fatalf("%s: no values", c.dst)
		}
		for i := 0; i < n; i++ {
			var got uint16
			if is32 {
				got = F32ToF16(math.Float32frombits(binary.LittleEndian.Uint32(src[4*i:])))
			} else {
				got = F64ToF16(math.Float64frombits(binary.LittleEndian.Uint64(src[8*i:])))
			}
			if want := binary.LittleEndian.Uint16(dst[2*i:]); got != want {
				t.Fatalf("%s value %d: F16 %#04x, NumPy %#04x", c.src, i, got, want)
			}
		}
	}
}

// numpyReader loads the files listed in manifest.json, .npy and .npz with
// np.load and safetensors by parsing the format by hand, and compares each
// array with its raw float64 values. It prints one line per problem.
const numpyReader = `
import json, os, sys
import numpy as np
d = sys.argv[1]
bad = []
def st_load(path):
    b = open(path, 'rb').read()
    n = int.from_bytes(b[:8], 'little')
    if (8 + n) % 8:
        bad.append('%s: data starts at %d, not a multiple of 8' % (path, 8 + n))
    h = json.loads(b[8:8 + n].decode('utf-8'))
    meta = h.pop('__metadata__', None)
    data = b[8 + n:]
    out = {}
    for k, e in h.items():
        s, t = e['data_offsets']
        buf = data[s:t]
        if e['dtype'] == 'BF16':
            a = (np.frombuffer(buf, '<u2').astype(np.uint32) << 16).view(np.float32)
        else:
            a = np.frombuffer(buf, {'F16': '<f2', 'F32': '<f4', 'F64': '<f8'}[e['dtype']])
        out[k] = (a.reshape(e['shape']), e['dtype'])
    return out, meta
for m in json.load(open(os.path.join(d, 'manifest.json'))):
    path = os.path.join(d, m['file'])
    if m['kind'] == 'npy':
        a = np.load(path, allow_pickle=False); dt = a.dtype.str
    elif m['kind'] == 'npz':
        z = np.load(path, allow_pickle=False); a = z[m['name']]; dt = a.dtype.str
    else:
        arrs, meta = st_load(path)
        if meta != m['meta']:
            bad.append('%s: metadata %r, want %r' % (m['file'], meta, m['meta']))
        a, dt = arrs[m['name']]
    want = np.fromfile(os.path.join(d, m['raw']), '<f8').reshape(m['shape'])
    if dt != m['dtype']:
        bad.append('%s %s: dtype %s, want %s' % (m['file'], m['name'], dt, m['dtype']))
    if list(a.shape) != m['shape'] or not np.array_equal(a.astype('<f8'), want, equal_nan=True):
        bad.append('%s %s: values or shape %s differ' % (m['file'], m['name'], a.shape))
    if np.signbit(a.astype('<f8')).tolist() != np.signbit(want).tolist():
        bad.append('%s %s: signs of zero differ' % (m['file'], m['name']))
print('\n'.join(bad) if bad else 'ok')
`

func TestInteropNumPyReads(t *testing.T) {
	py := pyfind.Require(t, "numpy")
	dir := t.TempDir()
	rng := rand.New(rand.NewPCG(19, 20))
	type entry struct {
		File  string            `json:"file"`
		Name  string            `json:"name"`
		Raw   string            `json:"raw"`
		Kind  string            `json:"kind"`
		Shape []int             `json:"shape"`
		DType string            `json:"dtype"`
		Meta  map[string]string `json:"meta,omitempty"`
	}
	var man []entry
	writeRaw := func(name string, tt *Tensor) {
		var b []byte
		for i := 0; i < tt.Len(); i++ {
			v := 0.0
			if tt.F64 != nil {
				v = tt.F64[i]
			} else {
				v = float64(tt.F32[i])
			}
			b = binary.LittleEndian.AppendUint64(b, math.Float64bits(v))
		}
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	create := func(name string, write func(*os.File) error) {
		f, err := os.Create(filepath.Join(dir, name))
		if err != nil {
			t.Fatal(err)
		}
		if err := write(f); err != nil {
			t.Fatal(err)
		}
		f.Close()
	}
	npDType := map[DType]string{F16: "<f2", F32: "<f4", F64: "<f8", BF16: "BF16"}
	for _, dt := range []DType{F16, F32, F64} {
		for i, shape := range testShapes {
			tt := randTensor(rng, "", dt, shape)
			name := string(dt) + "_" + string(rune('a'+i))
			create(name+".npy", func(f *os.File) error { return WriteNPY(f, tt) })
			writeRaw(name+".raw", tt)
			man = append(man, entry{File: name + ".npy", Raw: name + ".raw", Kind: "npy", Shape: shape, DType: npDType[dt]})
		}
	}
	var ts []*Tensor
	for i, shape := range testShapes {
		dt := []DType{F16, F32, F64}[i%3]
		ts = append(ts, randTensor(rng, "t"+string(rune('a'+i)), dt, shape))
	}
	for _, compress := range []bool{false, true} {
		name := "stored.npz"
		if compress {
			name = "deflated.npz"
		}
		create(name, func(f *os.File) error { return WriteNPZ(f, ts, compress) })
		for _, tt := range ts {
			raw := name + "_" + tt.Name + ".raw"
			writeRaw(raw, tt)
			man = append(man, entry{File: name, Name: tt.Name, Raw: raw, Kind: "npz", Shape: tt.Shape, DType: npDType[tt.DType]})
		}
	}
	var st []*Tensor
	for i, shape := range testShapes {
		dt := []DType{F16, BF16, F32, F64}[i%4]
		st = append(st, randTensor(rng, "layer."+string(rune('a'+i)), dt, shape))
	}
	meta := map[string]string{"method": "svd", "params": `{"rank":8}`, "lowrank": "test"}
	create("bundle.safetensors", func(f *os.File) error { return WriteSafetensors(f, st, meta) })
	for _, tt := range st {
		raw := "st_" + tt.Name + ".raw"
		writeRaw(raw, tt)
		man = append(man, entry{File: "bundle.safetensors", Name: tt.Name, Raw: raw, Kind: "safetensors", Shape: tt.Shape, DType: string(tt.DType), Meta: meta})
	}
	b, _ := json.Marshal(man)
	os.WriteFile(filepath.Join(dir, "manifest.json"), b, 0o600)
	if out := strings.TrimSpace(runPython(t, py, numpyReader, dir)); out != "ok" {
		t.Errorf("NumPy disagrees with our files:\n%s", out)
	}
	t.Logf("NumPy read %d arrays we wrote", len(man))
}
