package tensorops

// KhatriRao returns the Khatri–Rao (column-wise Kronecker) product
// mats[0] ⊙ mats[1] ⊙ … ⊙ mats[k−1] of matrices with a common number of
// columns R: a (Π rows) × R matrix whose row (i₀·I₁ + i₁)·I₂ + … (the LAST
// matrix's row index varying fastest) is mats[0][i₀,:] ∘ mats[1][i₁,:] ∘ ….
// With no matrices it returns nil.
//
// Lowrank's kernels never form the product of all but one factor; this is
// for callers, tests and small partial products.
func KhatriRao[T Float](mats ...*Matrix[T]) *Matrix[T] {
	if len(mats) == 0 {
		return nil
	}
	r := mats[0].Cols
	rows := 1
	for _, m := range mats {
		if m.Cols != r {
			panic(errShape)
		}
		rows *= m.Rows
	}
	out := NewMatrix[T](rows, r)
	krpRows(out.Data, mats, 0, rows, r)
	return out
}

// krpRows writes rows [lo, hi) of the Khatri–Rao product of mats (each with
// r columns) into dst (row-major, stride r, starting at row lo). An empty
// mats gives rows of ones.
func krpRows[T Float](dst []T, mats []*Matrix[T], lo, hi, r int) {
	k := len(mats)
	if k == 0 {
		for i := range dst[:(hi-lo)*r] {
			dst[i] = 1
		}
		return
	}
	idx := make([]int, k)
	rem := lo
	for j := k - 1; j >= 0; j-- {
		idx[j] = rem % mats[j].Rows
		rem /= mats[j].Rows
	}
	for row := lo; row < hi; row++ {
		d := dst[(row-lo)*r : (row-lo+1)*r]
		copy(d, mats[0].Data[idx[0]*r:(idx[0]+1)*r])
		for j := 1; j < k; j++ {
			s := mats[j].Data[idx[j]*r : (idx[j]+1)*r]
			for c := range d {
				d[c] *= s[c]
			}
		}
		for j := k - 1; j >= 0; j-- {
			idx[j]++
			if idx[j] < mats[j].Rows {
				break
			}
			idx[j] = 0
		}
	}
}
