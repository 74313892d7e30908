// Package tensorops holds Lowrank's tensor core: dense N-way tensors, their
// unfoldings, mode-n products, the Khatri–Rao product and MTTKRP, and the two
// tensor decompositions built on them, CP by alternating least squares
// (CPALS) and Tucker (truncated HOSVD, HOOI and partial Tucker).
//
// # Layout and conventions
//
// A Dense tensor of shape (I₀, I₁, …, I_{N−1}) stores element (i₀, …, i_{N−1})
// at the row-major offset ((i₀·I₁ + i₁)·I₂ + …)·I_{N−1} + i_{N−1}, the layout
// of NumPy and of PyTorch weights. Modes are numbered from 0.
//
// Unfold follows Kolda & Bader (2009): the mode-n unfolding X₍ₙ₎ is the
// I_n × Π_{k≠n} I_k matrix whose element (i_n, j) is x(i₀, …, i_{N−1}) with
//
//	j = Σ_{k≠n} i_k·J_k,  J_k = Π_{m<k, m≠n} I_m,
//
// i.e. the remaining modes in increasing order with the FIRST varying
// fastest. KhatriRao(A, B) is the column-wise Kronecker product: row
// i·J + j of A ⊙ B (A is I×R, B is J×R) is A[i,:] ∘ B[j,:]. With these two
// definitions a CP tensor [[λ; A₀, …, A_{N−1}]] satisfies Kolda & Bader's
//
//	X₍ₙ₎ = Aₙ · diag(λ) · (A_{N−1} ⊙ … ⊙ A_{n+1} ⊙ A_{n−1} ⊙ … ⊙ A₀)ᵀ,
//
// and a Tucker tensor [[G; U₀, …, U_{N−1}]] satisfies
//
//	X₍ₙ₎ = Uₙ · G₍ₙ₎ · (U_{N−1} ⊗ … ⊗ U_{n+1} ⊗ U_{n−1} ⊗ … ⊗ U₀)ᵀ.
//
// The kernels never form a Kolda unfolding: for mode n they view the
// row-major data as a P × I_n × Q array (P the product of the modes before
// n, Q of those after), whose slabs are plain row-major matrices that the
// BLAS multiplies in place. Unfold and Fold exist for callers and tests.
//
// # Kernels and precision
//
// Every dense product goes through a linalg.Backend (gonum or OpenBLAS) with
// its thread budget; float32 tensors use the single-precision BLAS. Small
// R×R systems (normal equations, Gram eigenproblems) are solved in float64.
//
// References:
//
//   - T. G. Kolda and B. W. Bader, Tensor Decompositions and Applications,
//     SIAM Review 51(3), 455–500, 2009.
//   - L. De Lathauwer, B. De Moor and J. Vandewalle, A Multilinear Singular
//     Value Decomposition, SIAM J. Matrix Anal. Appl. 21(4), 1253–1278, 2000;
//     and On the Best Rank-1 and Rank-(R1,R2,...,RN) Approximation of
//     Higher-Order Tensors, ibid., 1324–1342, 2000.
//   - N. Vannieuwenhoven, R. Vandebril and K. Meerbergen, A New Truncation
//     Strategy for the Higher-Order Singular Value Decomposition, SIAM J.
//     Sci. Comput. 34(2), A1027–A1052, 2012.
//   - A.-H. Phan, P. Tichavský and A. Cichocki, Fast Alternating LS
//     Algorithms for High Order CANDECOMP/PARAFAC Tensor Factorizations,
//     IEEE Trans. Signal Process. 61(19), 4834–4846, 2013.
package tensorops
