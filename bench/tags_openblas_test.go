//go:build cgo && openblas

package bench

// serverTags builds the server benchmarked by service_test.go with the same
// numeric backend as this test binary.
const serverTags = "openblas"
