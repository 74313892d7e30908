package compress

import (
	"fmt"
	"path"
	"strings"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// Kinds of layer, from a weight's rank and layout.
const (
	KindLinear  = "linear"    // 2-D (out, in)
	KindHFConv  = "hf_conv1d" // 2-D (in, out)
	KindConv1x1 = "conv1x1"   // 4-D (out, in, 1, 1)
	KindConv    = "conv"      // 4-D (out, in, kh, kw), kh·kw > 1
)

// Plan is the outcome of Plan: the layers to factor, in checkpoint order,
// and the policy with its defaults filled in.
type Plan struct {
	Policy Policy  `json:"policy"`
	Layers []Layer `json:"layers"`
	// Skipped lists tensors an explicit include pattern matched but that
	// cannot be factored, with the reason.
	Skipped []Skipped `json:"skipped,omitempty"`
	// ParamsCheckpoint counts the elements of every tensor of the
	// checkpoint, ParamsSelected those of the layers.
	ParamsCheckpoint int64 `json:"params_checkpoint"`
	ParamsSelected   int64 `json:"params_selected"`
}

// Skipped is a tensor left out of a plan.
type Skipped struct {
	Name   string `json:"name"`
	Reason string `json:"reason"`
}

// Layer is one weight to factor.
type Layer struct {
	Name   string         `json:"name"`
	DType  tensorio.DType `json:"dtype"`
	Shape  []int          `json:"shape"`
	Layout string         `json:"layout"`
	Kind   string         `json:"kind"`
	Method string         `json:"method"`
	// Prefix is the name without its ".weight" suffix; the factors are
	// called Prefix + ".lowrank.<i>.weight".
	Prefix string `json:"prefix"`
	// Bias names the checkpoint's Prefix + ".bias" when it has one; it is
	// copied unchanged and belongs to the last rebuilt module.
	Bias string `json:"bias,omitempty"`
	// Geometry is the convolution's (hinted or default) geometry; nil for
	// matrices.
	Geometry *Geometry `json:"geometry,omitempty"`
	Params   int64     `json:"params"`
}

// Geometry is a convolution's stride, padding and dilation (PyTorch conv2d
// semantics, groups = 1) and its spatial input size (0 when unknown).
type Geometry struct {
	Stride    [2]int `json:"stride"`
	Padding   [2]int `json:"padding"`
	Dilation  [2]int `json:"dilation"`
	InputSize [2]int `json:"input_size"`
}

// outputSize is the spatial output size of a kh×kw convolution, or 0×0
// when the input size is unknown or too small.
func (g *Geometry) outputSize(kh, kw int) (int, int) {
	k := [2]int{kh, kw}
	var out [2]int
	for a := range 2 {
		if g.InputSize[a] == 0 {
			return 0, 0
		}
		span := g.Dilation[a]*(k[a]-1) + 1
		out[a] = max(0, (g.InputSize[a]+2*g.Padding[a]-span)/g.Stride[a]+1)
	}
	return out[0], out[1]
}

// Matrix returns the shape of the matrix a svd layer factors: the weight
// as stored for matrices, (out, in) for 1×1 convs.
func (l *Layer) Matrix() (rows, cols int) { return l.Shape[0], l.Shape[1] }

// NewPlan selects the layers of a checkpoint (its tensors' infos, in file
// order) to factor under policy p, with their kind, layout and method. The
// policy is validated first; no layer selected is an EINVALID error on
// "policy.include".
func NewPlan(infos []tensorio.Info, p Policy) (*Plan, error) {
	if err := p.Validate(); err != nil {
		return nil, err
	}
	p = p.withDefaults()
	pl := &Plan{Policy: p}
	names := make(map[string]bool, len(infos))
	for _, in := range infos {
		names[in.Name] = true
		pl.ParamsCheckpoint += in.Elements()
	}
	for _, in := range infos {
		explicit := len(p.Include) > 0
		if explicit && !match(p.Include, in.Name) || match(p.Exclude, in.Name) {
			continue
		}
		if !explicit && !strings.HasSuffix(in.Name, "weight") {
			continue
		}
		l, why := newLayer(in, p)
		if why != "" {
			if explicit {
				pl.Skipped = append(pl.Skipped, Skipped{Name: in.Name, Reason: why})
			}
			continue
		}
		prefix, _ := strings.CutSuffix(in.Name, ".weight")
		l.Prefix = prefix
		for i := 0; names[l.factorName(0)]; i++ {
			// A name clash with an existing tensor: extend the prefix
			// until the factor names are free.
			l.Prefix = fmt.Sprintf("%s_%d", prefix, i)
		}
		if names[prefix+".bias"] && prefix != in.Name {
			l.Bias = prefix + ".bias"
		}
		pl.Layers = append(pl.Layers, l)
		pl.ParamsSelected += l.Params
	}
	if len(pl.Layers) == 0 {
		return nil, lowrank.Errorf(lowrank.EINVALID, "policy.include", "no tensor of the checkpoint is selected (%d tensors, %d skipped)", len(infos), len(pl.Skipped))
	}
	return pl, nil
}

// newLayer classifies one tensor, or says why it is not a layer to factor.
func newLayer(in tensorio.Info, p Policy) (Layer, string) {
	l := Layer{Name: in.Name, DType: in.DType, Shape: append([]int(nil), in.Shape...), Params: in.Elements()}
	if !in.DType.Readable() {
		return l, fmt.Sprintf("dtype %s is not a float type Lowrank reads", in.DType)
	}
	for _, d := range in.Shape {
		if d < 1 {
			return l, fmt.Sprintf("shape %v has an empty dimension", in.Shape)
		}
	}
	var hint *LayoutHint
	for i := range p.Layouts {
		if ok, _ := path.Match(p.Layouts[i].Pattern, in.Name); ok {
			hint = &p.Layouts[i]
			break
		}
	}
	switch len(in.Shape) {
	case 2:
		l.Layout, l.Kind, l.Method = LayoutLinear, KindLinear, MethodSVD
		if hint != nil {
			if hint.Layout == LayoutConv2D {
				return l, "a 2-D tensor cannot have layout conv2d"
			}
			if hint.Layout == LayoutHFConv1D {
				l.Layout, l.Kind = LayoutHFConv1D, KindHFConv
			}
		}
		if l.Params < p.MinElements {
			return l, fmt.Sprintf("%d elements, fewer than min_elements %d", l.Params, p.MinElements)
		}
	case 4:
		if hint != nil && hint.Layout != LayoutConv2D {
			return l, fmt.Sprintf("a 4-D tensor cannot have layout %s", hint.Layout)
		}
		l.Layout = LayoutConv2D
		kh, kw := in.Shape[2], in.Shape[3]
		if kh*kw == 1 {
			l.Kind, l.Method = KindConv1x1, MethodSVD
		} else {
			l.Kind, l.Method = KindConv, p.ConvMethod
		}
		l.Geometry = geometry(hint, p, kh, kw)
	default:
		return l, fmt.Sprintf("a %d-D tensor is neither a matrix nor a conv filter", len(in.Shape))
	}
	if min(in.Shape[0], in.Shape[1]) < 2 {
		return l, fmt.Sprintf("shape %v has a channel dimension below 2: no rank saves parameters", in.Shape)
	}
	return l, ""
}

// geometry fills a conv layer's geometry from its hint and the policy.
func geometry(h *LayoutHint, p Policy, kh, kw int) *Geometry {
	g := &Geometry{Stride: [2]int{1, 1}, Dilation: [2]int{1, 1}}
	in := p.InputSize
	if h != nil {
		copy(g.Stride[:], h.Stride)
		copy(g.Dilation[:], h.Dilation)
		if h.InputSize != nil {
			in = h.InputSize
		}
	}
	g.Padding = [2]int{g.Dilation[0] * (kh - 1) / 2, g.Dilation[1] * (kw - 1) / 2}
	if h != nil && h.Padding != nil {
		copy(g.Padding[:], h.Padding)
	}
	copy(g.InputSize[:], in)
	return g
}

// factorName is the name of the layer's i-th factor.
func (l *Layer) factorName(i int) string { return fmt.Sprintf("%s.lowrank.%d.weight", l.Prefix, i) }
