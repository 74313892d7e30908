package compress

import (
	"slices"
	"testing"

	"github.com/lowrank/lowrank"
	"github.com/lowrank/lowrank/internal/tensorio"
)

func TestParsePolicy(t *testing.T) {
	for _, tc := range []struct {
		json  string
		field string // "" for a valid policy
		code  string
	}{
		{json: `{"budget": 0.4}`},
		{json: `{"rule": {"rank": 8}, "rank_multiple": 8, "conv_method": "cp"}`},
		{json: `{"rule": {"auto": true}, "layers": [{"pattern": "fc*", "energy": 0.9}]}`},
		{json: `{"rule": {"rel_error": 0.1}, "include": ["a.*"], "exclude": [], "layouts": [{"pattern": "*c_attn*", "layout": "hf_conv1d"}]}`},
		{json: `{"budget": 0.5, "layouts": [{"pattern": "conv*", "layout": "conv2d", "stride": [2, 2], "padding": [0, 1], "input_size": [32, 32]}], "input_size": [224, 224]}`},
		{json: `{"budget": 0.4, "budgett": 1}`, field: "policy.budgett"},
		{json: `{"budget": "much"}`, field: "policy.budget"},
		{json: `{"budget": 0.4} {}`, field: "policy"},
		{json: `[1]`, field: "policy"},
		{json: `{}`, field: "policy.rule"},
		{json: `{"budget": 0.4, "rule": {"rank": 3}}`, field: "policy.budget"},
		{json: `{"budget": 1}`, field: "policy.budget"},
		{json: `{"budget": -0.2}`, field: "policy.budget"},
		{json: `{"rule": {}}`, field: "policy.rule.rank"},
		{json: `{"rule": {"rank": 2, "energy": 0.9}}`, field: "policy.rule.rank"},
		{json: `{"rule": {"energy": 1.5}}`, field: "policy.rule.energy"},
		{json: `{"rule": {"rel_error": 1}}`, field: "policy.rule.rel_error"},
		{json: `{"rule": {"compression": 2}}`, field: "policy.rule.compression"},
		{json: `{"rule": {"rank": -1}}`, field: "policy.rule.rank"},
		{json: `{"rule": {"auto": true, "rank": 3}}`, field: "policy.rule.auto"},
		{json: `{"rule": {"energy": 0.9}, "conv_method": "cp"}`, field: "policy.rule.energy"},
		{json: `{"rule": {"auto": true}, "conv_method": "cp"}`, field: "policy.rule.auto"},
		{json: `{"rule": {"rank": 3}, "conv_method": "svd"}`, field: "policy.conv_method"},
		{json: `{"rule": {"rank": 3}, "include": ["a[" ]}`, field: "policy.include[0]"},
		{json: `{"rule": {"rank": 3}, "exclude": ["ok", ""]}`, field: "policy.exclude[1]"},
		{json: `{"rule": {"rank": 3}, "min_elements": -1}`, field: "policy.min_elements"},
		{json: `{"rule": {"rank": 3}, "layouts": [{"pattern": "x", "layout": "nhwc"}]}`, field: "policy.layouts[0].layout"},
		{json: `{"rule": {"rank": 3}, "layouts": [{"pattern": "x", "layout": "linear", "stride": [2, 2]}]}`, field: "policy.layouts[0].layout"},
		{json: `{"rule": {"rank": 3}, "layouts": [{"pattern": "x", "layout": "conv2d", "stride": [2, 2, 2]}]}`, field: "policy.layouts[0].stride"},
		{json: `{"rule": {"rank": 3}, "layouts": [{"pattern": "x", "layout": "conv2d", "padding": [0, -1]}]}`, field: "policy.layouts[0].padding[1]"},
		{json: `{"rule": {"rank": 3}, "layouts": [{"pattern": "x", "layout": "conv2d", "dilation": [0, 1]}]}`, field: "policy.layouts[0].dilation[0]"},
		{json: `{"rule": {"rank": 3}, "layers": [{"pattern": "", "rank": 2}]}`, field: "policy.layers[0].pattern"},
		{json: `{"rule": {"rank": 3}, "layers": [{"pattern": "a", "rank": 2}, {"pattern": "b"}]}`, field: "policy.layers[1].rank"},
		{json: `{"rule": {"rank": 3}, "layers": [{"pattern": "a", "auto": true}], "conv_method": "cp"}`, field: "policy.layers[0].auto"},
		{json: `{"rule": {"rank": 3}, "rank_multiple": -8}`, field: "policy.rank_multiple"},
		{json: `{"rule": {"rank": 3}, "input_size": [0, 3]}`, field: "policy.input_size[0]"},
		{json: `{"rule": {"rank": 3}, "input_size": [3]}`, field: "policy.input_size"},
		{json: `{"rule": {"rank": 3}, "cp_iterations": -1}`, field: "policy.cp_iterations"},
		{json: `{"rule": {"rank": 3}, "tucker_iterations": 5000}`, field: "policy.tucker_iterations"},
	} {
		_, err := ParsePolicy([]byte(tc.json))
		if tc.field == "" {
			if err != nil {
				t.Errorf("%s: %v", tc.json, err)
			}
			continue
		}
		if err == nil {
			t.Errorf("%s: no error, want one on %s", tc.json, tc.field)
			continue
		}
		code := tc.code
		if code == "" {
			code = lowrank.EINVALID
		}
		if e, ok := err.(*lowrank.Error); !ok || e.Code != code || e.Field != tc.field {
			t.Errorf("%s: %#v, want %s on %s", tc.json, err, code, tc.field)
		}
	}
}

// synthInfos is a checkpoint with every kind of tensor the default
// selection has to tell apart.
func synthInfos() []tensorio.Info {
	info := func(name string, dt tensorio.DType, shape ...int) tensorio.Info {
		return tensorio.Info{Name: name, DType: dt, Shape: shape, Offset: -1}
	}
	return []tensorio.Info{
		info("model.embed_tokens.weight", tensorio.F32, 1000, 256),
		info("conv1.weight", tensorio.F16, 64, 32, 3, 3),
		info("conv1.bias", tensorio.F16, 64),
		info("bn1.weight", tensorio.F32, 64),
		info("bn1.running_mean", tensorio.F32, 64),
		info("conv2.weight", tensorio.F32, 128, 64, 1, 1),
		info("dw.weight", tensorio.F32, 64, 1, 3, 3),
		info("layers.0.fc1.weight", tensorio.BF16, 512, 256),
		info("layers.0.fc1.bias", tensorio.BF16, 512),
		info("layers.0.norm.weight", tensorio.F32, 256),
		info("small.weight", tensorio.F32, 16, 16),
		info("h.0.attn.c_attn.weight", tensorio.F32, 256, 768),
		info("h.0.attn.c_attn.bias", tensorio.F32, 768),
		info("position_ids", "I64", 1, 512),
		info("int.weight", "I32", 512, 512),
		info("proj", tensorio.F32, 512, 512),
		info("lm_head.weight", tensorio.F32, 1000, 256),
		info("empty.weight", tensorio.F32, 64, 64, 0, 3),
	}
}

func TestPlanDefaultSelection(t *testing.T) {
	p := Policy{Budget: 0.5, Layouts: []LayoutHint{{Pattern: "*.c_attn.weight", Layout: LayoutHFConv1D}}}
	plan, err := NewPlan(synthInfos(), p)
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		name, kind, method, prefix, bias string
	}
	wants := []want{
		{"conv1.weight", KindConv, MethodTucker2, "conv1", "conv1.bias"},
		{"conv2.weight", KindConv1x1, MethodSVD, "conv2", ""},
		{"layers.0.fc1.weight", KindLinear, MethodSVD, "layers.0.fc1", "layers.0.fc1.bias"},
		{"h.0.attn.c_attn.weight", KindHFConv, MethodSVD, "h.0.attn.c_attn", "h.0.attn.c_attn.bias"},
	}
	if len(plan.Layers) != len(wants) {
		var got []string
		for _, l := range plan.Layers {
			got = append(got, l.Name)
		}
		t.Fatalf("selected %v, want %d layers", got, len(wants))
	}
	var sel int64
	for i, w := range wants {
		l := plan.Layers[i]
		if l.Name != w.name || l.Kind != w.kind || l.Method != w.method || l.Prefix != w.prefix || l.Bias != w.bias {
			t.Errorf("layer %d: %+v, want %+v", i, l, w)
		}
		sel += l.Params
	}
	if plan.ParamsSelected != sel {
		t.Errorf("ParamsSelected %d, want %d", plan.ParamsSelected, sel)
	}
	if g := plan.Layers[0].Geometry; g == nil || g.Padding != [2]int{1, 1} || g.Stride != [2]int{1, 1} || g.Dilation != [2]int{1, 1} {
		t.Errorf("conv1 geometry %+v, want stride 1, same padding 1, dilation 1", g)
	}
	if plan.Layers[2].Geometry != nil {
		t.Errorf("a linear layer has a geometry")
	}
	if len(plan.Skipped) != 0 {
		t.Errorf("default selection reports skipped tensors %v", plan.Skipped)
	}
	if plan.Policy.MinElements != DefaultMinElements || !slices.Equal(plan.Policy.Exclude, DefaultExclude) || plan.Policy.ConvMethod != MethodTucker2 {
		t.Errorf("defaults not filled in: %+v", plan.Policy)
	}
}

func TestPlanExplicitSelection(t *testing.T) {
	p := Policy{
		Rule:        &Rule{Rank: 4},
		Include:     []string{"*.weight", "proj", "position_ids"},
		Exclude:     []string{},
		MinElements: 1,
		ConvMethod:  MethodCP,
		InputSize:   []int{32, 32},
		Layouts:     []LayoutHint{{Pattern: "conv1.*", Layout: LayoutConv2D, Stride: []int{2, 2}, Padding: []int{0, 0}, Dilation: []int{2, 1}, InputSize: []int{16, 8}}},
	}
	plan, err := NewPlan(synthInfos(), p)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, l := range plan.Layers {
		names = append(names, l.Name)
	}
	want := []string{"model.embed_tokens.weight", "conv1.weight", "conv2.weight", "layers.0.fc1.weight", "small.weight", "h.0.attn.c_attn.weight", "proj", "lm_head.weight"}
	if !slices.Equal(names, want) {
		t.Fatalf("selected %v, want %v", names, want)
	}
	if plan.Layers[1].Method != MethodCP {
		t.Errorf("conv1 method %s, want cp", plan.Layers[1].Method)
	}
	g := plan.Layers[1].Geometry
	if g.Stride != [2]int{2, 2} || g.Padding != [2]int{0, 0} || g.Dilation != [2]int{2, 1} || g.InputSize != [2]int{16, 8} {
		t.Errorf("hinted geometry %+v", g)
	}
	if h, w := g.outputSize(3, 3); h != 6 || w != 3 {
		t.Errorf("output size %d×%d, want 6×3 ((16−5)/2+1, (8−3)/2+1)", h, w)
	}
	if g := plan.Layers[2].Geometry; g.InputSize != [2]int{32, 32} {
		t.Errorf("conv2 input size %v, want the policy's", g.InputSize)
	}
	skipped := map[string]bool{}
	for _, s := range plan.Skipped {
		skipped[s.Name] = true
	}
	for _, n := range []string{"bn1.weight", "dw.weight", "layers.0.norm.weight", "position_ids", "int.weight", "empty.weight"} {
		if !skipped[n] {
			t.Errorf("%s not reported as skipped (%v)", n, plan.Skipped)
		}
	}
}

func TestPlanNothingSelected(t *testing.T) {
	_, err := NewPlan(synthInfos(), Policy{Rule: &Rule{Rank: 2}, Include: []string{"nothing*"}})
	wantCode(t, err, lowrank.EINVALID, "policy.include")
	_, err = NewPlan(synthInfos(), Policy{Budget: 3})
	wantCode(t, err, lowrank.EINVALID, "policy.budget")
}

func TestPlanNameClash(t *testing.T) {
	infos := []tensorio.Info{
		{Name: "fc.weight", DType: tensorio.F32, Shape: []int{300, 300}},
		{Name: "fc.lowrank.0.weight", DType: tensorio.F32, Shape: []int{3}},
	}
	plan, err := NewPlan(infos, Policy{Rule: &Rule{Rank: 2}})
	if err != nil {
		t.Fatal(err)
	}
	if got := plan.Layers[0].factorName(0); got != "fc_0.lowrank.0.weight" {
		t.Errorf("factor name %q, want fc_0.lowrank.0.weight", got)
	}
}
