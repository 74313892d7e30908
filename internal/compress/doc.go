// Package compress turns a whole checkpoint into a smaller one without
// training data: it factors the selected weights of a model into low-rank
// layers and records how to rebuild them.
//
// # Phases
//
// A compression runs in phases with plain, JSON-serialisable data between
// them, so the service can run the per-layer steps as independent
// sub-jobs:
//
//	NewPlan(infos, policy)        → *Plan          which tensors, kind, layout, method
//	Analyze(ctx, b, layer, t)     → *Analysis      per layer: ‖W‖², spectra
//	Allocate(plan, analyses)      → []Allocation   ranks: per-layer rules, auto, or a global budget
//	Factor(ctx, b, p, layer, a, t) → *LayerResult  per layer: factors, measured error, params, MACs
//	Assemble(w, src, …)                            the compressed safetensors checkpoint
//	NewManifest, NewReport, ReportHTML             the recipe and the report
//
// A LayerResult's factors are not JSON: WriteFactors and ReadFactors move
// them as a small safetensors bundle. Run does it all in one process with
// a bounded number of layers at once.
//
// # Selection and methods
//
// By default every 2-D tensor whose name ends in "weight" with at least
// Policy.MinElements elements, and every 4-D one, is selected, less
// DefaultExclude (embeddings, the output head). A 2-D weight is a PyTorch
// Linear (out, in) unless a layout hint says Hugging Face Conv1D (in, out);
// a 4-D weight is a Conv2d (out, in, kh, kw) with groups = 1 (grouped and
// depthwise convolutions must be excluded; those with a channel dimension
// of 1 are skipped). Matrices and 1×1 convs are factored by a truncated
// SVD; k×k convs by Tucker-2 on the two channel modes (default) or CP.
//
// # Output names
//
// A factored weight "<prefix>.weight" is replaced, at its place in the
// checkpoint, by "<prefix>.lowrank.<i>.weight" for i = 0, 1, …, in the
// order the rebuilt modules apply (if such a name exists already, the
// prefix gets a "_0", "_1", … suffix). With r the rank, W the weight, and
// W ≈ U·diag(σ)·Vᵀ its truncated SVD split as L = U·diag(sqrt σ),
// R = diag(sqrt σ)·Vᵀ:
//
//	layer                       factor 0               factor 1                 factor 2             factor 3
//	Linear (out, in)            R (r, in)              L (out, r)
//	HF Conv1D (in, out)         L (in, r)              R (r, out)
//	Conv2d 1×1 (out, in, 1, 1)  R (r, in, 1, 1)        L (out, r, 1, 1)
//	Conv2d k×k, tucker2         U_inᵀ (r_in, in, 1, 1) G (r_out, r_in, kh, kw) U_out (out, r_out, 1, 1)
//	Conv2d k×k, cp              Bᵀ (R, in, 1, 1)       Cᵀ (R, 1, kh, 1)         Dᵀ (R, 1, 1, kw)     A·diag(λ) (out, R, 1, 1)
//
// where W ≈ G ×₀ U_out ×₁ U_in (Tucker-2, U orthonormal) and
// W ≈ Σ_r λ_r a_r ∘ b_r ∘ c_r ∘ d_r (CP; A, B, C, D the factor matrices of
// the out, in, kh and kw modes, unit columns). A Tucker-2 mode kept at
// full rank (r_in = in or r_out = out) has no factor: the core absorbs its
// square orthogonal factor, and the numbers stay consecutive (the core is
// then factor 0, or the last). Factors have the weight's dtype. Every other tensor — biases (including the replaced layers'),
// norms, embeddings, buffers of any dtype — is copied byte for byte. The
// file's __metadata__ keeps the source's entries and adds
// "lowrank_version", "lowrank_policy" (the policy as JSON, defaults filled
// in) and "lowrank_format" (ManifestFormat); "format" is "pt" unless the
// source set it.
//
// # Rebuilding
//
// Each layer becomes a sequence of modules, the original bias on the last:
//
//	Linear:     Linear(in→r, no bias), Linear(r→out, bias)
//	HF Conv1D:  Conv1D(in→r, zero bias), Conv1D(r→out, bias)
//	1×1 conv:   Conv2d 1×1 (in→r, the original stride and padding), Conv2d 1×1 (r→out, bias)
//	tucker2:    Conv2d 1×1 (in→r_in), Conv2d kh×kw (r_in→r_out, the original stride, padding, dilation),
//	            Conv2d 1×1 (r_out→out, bias); a 1×1 is left out for a mode at full rank
//	cp:         Conv2d 1×1 (in→R), Conv2d kh×1 depthwise (groups R; the original stride, padding,
//	            dilation along the height), Conv2d 1×kw depthwise (the same along the width),
//	            Conv2d 1×1 (R→out, bias)
//
// The names are chosen to be a PyTorch state_dict's: if the module at
// <prefix> is replaced by one holding the factor modules (without bias) in
// an nn.Sequential called "lowrank" and the original bias as its own
// parameter "bias", added after the last module, then
// model.load_state_dict reads the compressed checkpoint as it is, every
// other tensor included. examples/pytorch_apply.py does this.
//
// # Manifest schema (ManifestFormat "lowrank.compress.v1")
//
//	{
//	  "format": "lowrank.compress.v1",
//	  "lowrank_version": "v1.2.3",
//	  "policy": { …the Policy, defaults filled in… },
//	  "layers": [{
//	    "name": "features.3.weight", "shape": [128, 64, 3, 3], "dtype": "F32",
//	    "layout": "conv2d", "kind": "conv", "method": "tucker2", "ranks": [40, 24],
//	    "geometry": {"stride": [1, 1], "padding": [1, 1], "dilation": [1, 1], "input_size": [56, 56]},
//	    "factors": [{"name": "features.3.lowrank.0.weight", "shape": [24, 64, 1, 1], "dtype": "F32"}, …],
//	    "modules": [
//	      {"type": "conv2d", "weight": "features.3.lowrank.0.weight", "in_features": 64, "out_features": 24,
//	       "kernel_size": [1, 1], "groups": 1, "stride": [1, 1], "padding": [0, 0], "dilation": [1, 1]},
//	      {"type": "conv2d", "weight": "features.3.lowrank.1.weight", "in_features": 24, "out_features": 40,
//	       "kernel_size": [3, 3], "groups": 1, "geometry": "original", "stride": [1, 1], "padding": [1, 1], …},
//	      {"type": "conv2d", "weight": "features.3.lowrank.2.weight", "bias": "features.3.bias", …}],
//	    "rel_error": 0.083, "params_before": 73728, "params_after": 15296
//	  }]
//	}
//
// "layers" lists the replaced layers only (a selected layer the allocation
// kept is absent; the report says why). "kind" is linear, hf_conv1d,
// conv1x1 or conv; "method" svd, tucker2 or cp; "ranks" [r], [r_out, r_in]
// or [R]. A module's "type" is linear (weight (out, in)), hf_conv1d
// (weight (in, out)) or conv2d (weight (out, in/groups, kh, kw)); "bias"
// names the original bias tensor on the last module, if the layer had one.
// "geometry" says where a conv module's stride, padding and dilation come
// from: absent (1, 0, 1), "original" (the replaced conv's), "original_h" or
// "original_w" (the replaced conv's along that axis, 1, 0, 1 along the
// other). Since a checkpoint does not record a conv's geometry, a rebuild
// takes it from the model it patches; "stride", "padding" and "dilation"
// give the values the plan assumed (from a layout hint, or stride 1,
// dilation 1 and "same" padding), used for the MAC counts.
//
// # Errors
//
// Errors are measured, not estimated: Factor rebuilds each weight from its
// factors as stored and reports ‖W − Ŵ‖_F/‖W‖_F. Allocate's predicted
// error is exact for svd (Eckart–Young) and an upper bound for Tucker-2.
// With Options.Verify, VerifyOutput also applies the original layer and its
// rebuilt modules (matrix products; convolutions by im2col, with the
// layer's stride, padding and dilation) to random inputs and records the
// relative output difference, which for i.i.d. inputs estimates the weight
// error; the report shows both.
//
// # Budget
//
// A global budget keeps a fraction of the selected layers' parameters and
// minimises the sum over layers of the squared relative weight errors,
// priced exactly from the spectra (see Allocate). CP's error cannot be
// priced before CP runs, so under a budget each CP layer takes its
// proportional share (compression = budget) unless Policy.Layers gives it a
// rule.
package compress
