package compress

import (
	"encoding/json"
	"fmt"
	"io"
	"math"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// ManifestFormat names the manifest's schema version.
const ManifestFormat = "lowrank.compress.v1"

// Metadata keys Assemble adds to the output's __metadata__.
const (
	MetaVersion = "lowrank_version"
	MetaPolicy  = "lowrank_policy"
	MetaFormat  = "lowrank_format"
)

// Module types of a rebuild recipe.
const (
	ModuleLinear   = "linear"    // PyTorch Linear: weight (out, in)
	ModuleHFConv1D = "hf_conv1d" // Hugging Face Conv1D: weight (in, out)
	ModuleConv2D   = "conv2d"    // PyTorch Conv2d: weight (out, in/groups, kh, kw)
)

// Geometry sources of a rebuilt conv module.
const (
	GeometryNone      = ""           // stride 1, padding 0, dilation 1
	GeometryOriginal  = "original"   // the original conv's stride, padding and dilation
	GeometryOriginalH = "original_h" // the original's along the height; 1, 0, 1 along the width
	GeometryOriginalW = "original_w" // the original's along the width; 1, 0, 1 along the height
)

// Manifest says, for every replaced layer, how to rebuild it from the
// compressed checkpoint. See the package documentation for the schema.
type Manifest struct {
	Format         string          `json:"format"`
	LowrankVersion string          `json:"lowrank_version"`
	Policy         Policy          `json:"policy"`
	Layers         []ManifestLayer `json:"layers"`
}

// ManifestLayer is one replaced layer.
type ManifestLayer struct {
	Name     string         `json:"name"`
	Shape    []int          `json:"shape"`
	DType    tensorio.DType `json:"dtype"`
	Layout   string         `json:"layout"`
	Kind     string         `json:"kind"`
	Method   string         `json:"method"`
	Ranks    []int          `json:"ranks"`
	Geometry *Geometry      `json:"geometry,omitempty"`
	Factors  []FactorInfo   `json:"factors"`
	// Modules are the layers that replace the original, in the order they
	// apply.
	Modules      []Module `json:"modules"`
	RelError     float64  `json:"rel_error"`
	ParamsBefore int64    `json:"params_before"`
	ParamsAfter  int64    `json:"params_after"`
}

// Module is one layer of a rebuild recipe.
type Module struct {
	Type   string `json:"type"`
	Weight string `json:"weight"`
	// Bias names the original bias tensor (copied unchanged) on the last
	// module; the others have none.
	Bias       string `json:"bias,omitempty"`
	In         int    `json:"in_features"`
	Out        int    `json:"out_features"`
	KernelSize []int  `json:"kernel_size,omitempty"`
	Groups     int    `json:"groups,omitempty"`
	// Geometry says where the conv's stride, padding and dilation come from
	// (GeometryOriginal, ...; empty: 1, 0, 1); Stride, Padding and Dilation
	// give the values from the plan's geometry, for reference.
	Geometry string `json:"geometry,omitempty"`
	Stride   []int  `json:"stride,omitempty"`
	Padding  []int  `json:"padding,omitempty"`
	Dilation []int  `json:"dilation,omitempty"`
}

// NewManifest describes the replaced layers: plan.Layers[i] factored as
// results[i] (nil when kept).
func NewManifest(plan *Plan, results []*LayerResult, version string) *Manifest {
	m := &Manifest{Format: ManifestFormat, LowrankVersion: version, Policy: plan.Policy, Layers: []ManifestLayer{}}
	for i, r := range results {
		if r == nil {
			continue
		}
		l := &plan.Layers[i]
		m.Layers = append(m.Layers, ManifestLayer{
			Name: l.Name, Shape: l.Shape, DType: l.DType, Layout: l.Layout, Kind: l.Kind, Method: l.Method,
			Ranks: r.Ranks, Geometry: l.Geometry, Factors: r.FactorInfos, Modules: modules(l, r),
			RelError: r.RelError, ParamsBefore: r.ParamsBefore, ParamsAfter: r.ParamsAfter,
		})
	}
	return m
}

// modules is the rebuild recipe of one layer.
func modules(l *Layer, r *LayerResult) []Module {
	name := func(i int) string { return r.FactorInfos[i].Name }
	var ms []Module
	switch l.Kind {
	case KindLinear:
		out, in, k := l.Shape[0], l.Shape[1], r.Ranks[0]
		ms = []Module{
			{Type: ModuleLinear, Weight: name(0), In: in, Out: k},
			{Type: ModuleLinear, Weight: name(1), In: k, Out: out},
		}
	case KindHFConv:
		in, out, k := l.Shape[0], l.Shape[1], r.Ranks[0]
		ms = []Module{
			{Type: ModuleHFConv1D, Weight: name(0), In: in, Out: k},
			{Type: ModuleHFConv1D, Weight: name(1), In: k, Out: out},
		}
	default:
		out, in, kh, kw := l.Shape[0], l.Shape[1], l.Shape[2], l.Shape[3]
		g := l.Geometry
		conv := func(w string, in, out, kh, kw, groups int, geom string) Module {
			m := Module{Type: ModuleConv2D, Weight: w, In: in, Out: out, KernelSize: []int{kh, kw}, Groups: groups, Geometry: geom,
				Stride: []int{1, 1}, Padding: []int{0, 0}, Dilation: []int{1, 1}}
			for a := range 2 {
				if geom == GeometryOriginal || geom == GeometryOriginalH && a == 0 || geom == GeometryOriginalW && a == 1 {
					m.Stride[a], m.Padding[a], m.Dilation[a] = g.Stride[a], g.Padding[a], g.Dilation[a]
				}
			}
			return m
		}
		switch l.Method {
		case MethodSVD: // 1×1: the first conv keeps the stride (and padding, which it zero-pads through)
			k := r.Ranks[0]
			ms = []Module{conv(name(0), in, k, 1, 1, 1, GeometryOriginal), conv(name(1), k, out, 1, 1, 1, GeometryNone)}
		case MethodTucker2: // a mode at full rank has no 1×1 conv (see Factor)
			ro, ri := r.Ranks[0], r.Ranks[1]
			k := 0
			if ri < in {
				ms = append(ms, conv(name(k), in, ri, 1, 1, 1, GeometryNone))
				k++
			}
			ms = append(ms, conv(name(k), ri, ro, kh, kw, 1, GeometryOriginal))
			k++
			if ro < out {
				ms = append(ms, conv(name(k), ro, out, 1, 1, 1, GeometryNone))
			}
		case MethodCP:
			R := r.Ranks[0]
			ms = []Module{
				conv(name(0), in, R, 1, 1, 1, GeometryNone),
				conv(name(1), R, R, kh, 1, R, GeometryOriginalH),
				conv(name(2), R, R, 1, kw, R, GeometryOriginalW),
				conv(name(3), R, out, 1, 1, 1, GeometryNone),
			}
		}
	}
	ms[len(ms)-1].Bias = l.Bias
	return ms
}

// Report summarises a compression per layer and in total.
type Report struct {
	LowrankVersion string        `json:"lowrank_version"`
	Layers         []ReportLayer `json:"layers"`
	// Skipped lists tensors an include pattern matched that could not be
	// factored, with the reason.
	Skipped []Skipped `json:"skipped,omitempty"`
	Totals  Totals    `json:"totals"`
	// Seconds is the wall time of the whole run (Run fills it).
	Seconds float64 `json:"seconds,omitempty"`
}

// ReportLayer is one selected layer: factored, or kept with the reason.
type ReportLayer struct {
	Name              string   `json:"name"`
	Kind              string   `json:"kind"`
	Method            string   `json:"method"`
	Shape             []int    `json:"shape"`
	Ranks             []int    `json:"ranks,omitempty"`
	Kept              bool     `json:"kept"`
	By                string   `json:"by"`
	Note              string   `json:"note,omitempty"`
	ParamsBefore      int64    `json:"params_before"`
	ParamsAfter       int64    `json:"params_after"`
	RelError          float64  `json:"rel_error"`
	PredictedRelError *float64 `json:"predicted_rel_error,omitempty"`
	OutputRelError    *float64 `json:"output_rel_error,omitempty"`
	MACsBefore        int64    `json:"macs_before"`
	MACsAfter         int64    `json:"macs_after"`
}

// Totals sum the report's layers. ParamsCheckpoint* count every tensor of
// the checkpoint; ParamsSelected* the selected layers; MACs the layers
// whose count is known. SumRelErrorSq = Σ (relative error)² is what a
// budget minimises; GlobalRelError = sqrt(Σ‖W − Ŵ‖²/Σ‖W‖²) over the
// selected layers.
type Totals struct {
	ParamsCheckpointBefore int64   `json:"params_checkpoint_before"`
	ParamsCheckpointAfter  int64   `json:"params_checkpoint_after"`
	ParamsSelectedBefore   int64   `json:"params_selected_before"`
	ParamsSelectedAfter    int64   `json:"params_selected_after"`
	MACsBefore             int64   `json:"macs_before"`
	MACsAfter              int64   `json:"macs_after"`
	LayersFactored         int     `json:"layers_factored"`
	LayersKept             int     `json:"layers_kept"`
	SumRelErrorSq          float64 `json:"sum_rel_error_sq"`
	RMSRelError            float64 `json:"rms_rel_error"`
	GlobalRelError         float64 `json:"global_rel_error"`
}

// NewReport builds the report from the phases' outputs (all indexed like
// plan.Layers; results[i] nil for a kept layer).
func NewReport(plan *Plan, analyses []*Analysis, allocs []Allocation, results []*LayerResult, version string) *Report {
	rep := &Report{LowrankVersion: version, Layers: []ReportLayer{}, Skipped: plan.Skipped}
	t := &rep.Totals
	var errW, normW float64
	for i := range plan.Layers {
		l, al, r := &plan.Layers[i], &allocs[i], results[i]
		rl := ReportLayer{Name: l.Name, Kind: l.Kind, Method: l.Method, Shape: l.Shape, By: al.By, Note: al.Note,
			ParamsBefore: l.Params, ParamsAfter: l.Params, PredictedRelError: al.PredictedRelError}
		if r == nil {
			rl.Kept = true
			rl.MACsBefore, _ = macs(l, []int{1, 1})
			rl.MACsAfter = rl.MACsBefore
			t.LayersKept++
		} else {
			rl.Ranks, rl.ParamsAfter, rl.RelError, rl.OutputRelError = r.Ranks, r.ParamsAfter, r.RelError, r.OutputRelError
			rl.MACsBefore, rl.MACsAfter = r.MACsBefore, r.MACsAfter
			t.LayersFactored++
		}
		rep.Layers = append(rep.Layers, rl)
		t.ParamsSelectedBefore += rl.ParamsBefore
		t.ParamsSelectedAfter += rl.ParamsAfter
		t.MACsBefore += rl.MACsBefore
		t.MACsAfter += rl.MACsAfter
		t.SumRelErrorSq += rl.RelError * rl.RelError
		errW += rl.RelError * rl.RelError * analyses[i].NormSq
		normW += analyses[i].NormSq
	}
	t.ParamsCheckpointBefore = plan.ParamsCheckpoint
	t.ParamsCheckpointAfter = plan.ParamsCheckpoint - t.ParamsSelectedBefore + t.ParamsSelectedAfter
	if n := len(plan.Layers); n > 0 {
		t.RMSRelError = math.Sqrt(t.SumRelErrorSq / float64(n))
	}
	if normW > 0 {
		t.GlobalRelError = math.Sqrt(errW / normW)
	}
	return rep
}

// Assemble writes the compressed checkpoint to w: the tensors of the source
// (infos, in file order, read from src) with each factored weight
// (plan.Layers[i] with results[i] != nil) replaced, at its place, by its
// factors, and every other tensor copied unchanged. Tensors stored as is in
// the source (any safetensors tensor, whatever its dtype) are copied byte
// for byte; others (.npz entries that are deflated, big-endian or Fortran
// order) are decoded and written in their dtype. metadata becomes
// __metadata__.
func Assemble(w io.Writer, src io.ReaderAt, size int64, infos []tensorio.Info, plan *Plan, results []*LayerResult, metadata map[string]string) error {
	replaced := map[string]*LayerResult{}
	for i, r := range results {
		if r != nil {
			if r.Name != plan.Layers[i].Name {
				panic("compress: Assemble: results out of order")
			}
			replaced[r.Name] = r
		}
	}
	entries := make([]tensorio.SafetensorsEntry, 0, len(infos)+2*len(replaced))
	for _, in := range infos {
		if r := replaced[in.Name]; r != nil {
			for _, f := range r.Factors {
				entries = append(entries, tensorio.SafetensorsEntry{Tensor: f})
			}
			continue
		}
		if in.Offset >= 0 && !in.BigEndian && !in.FortranOrder {
			entries = append(entries, tensorio.SafetensorsEntry{Name: in.Name, DType: in.DType, Shape: in.Shape,
				Raw: io.NewSectionReader(src, in.Offset, in.Length)})
			continue
		}
		t, err := tensorio.ReadTensor(src, size, in.Name)
		if err != nil {
			return err
		}
		entries = append(entries, tensorio.SafetensorsEntry{Tensor: t})
	}
	return tensorio.WriteSafetensorsEntries(w, entries, metadata)
}

// outputMetadata is the output's __metadata__: the source's, then "format"
// "pt" if absent, the Lowrank version, the policy and the manifest format.
func outputMetadata(src map[string]string, p Policy, version string) (map[string]string, error) {
	m := make(map[string]string, len(src)+4)
	for k, v := range src {
		m[k] = v
	}
	if _, ok := m["format"]; !ok {
		m["format"] = "pt"
	}
	b, err := json.Marshal(p)
	if err != nil {
		return nil, &lowrank.Error{Code: lowrank.EINTERNAL, Message: "encoding the policy", Err: err}
	}
	m[MetaVersion] = version
	m[MetaPolicy] = string(b)
	m[MetaFormat] = ManifestFormat
	return m, nil
}

// layerTitle is a layer's heading in the HTML report.
func layerTitle(l *ReportLayer) string {
	if l.Kept {
		return fmt.Sprintf("%s %v (kept)", l.Name, l.Shape)
	}
	return fmt.Sprintf("%s %v → %s %v", l.Name, l.Shape, l.Method, l.Ranks)
}
