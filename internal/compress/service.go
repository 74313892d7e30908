package compress

// OutputMetadata is the __metadata__ Run gives the compressed checkpoint:
// the source's entries (src), then "format" "pt" if absent, the Lowrank
// version, the policy p (as the plan records it, defaults filled in) and
// the manifest format. It is exported for callers that run the phases
// themselves, as the job service does, one sub-job per layer.
func OutputMetadata(src map[string]string, p Policy, version string) (map[string]string, error) {
	return outputMetadata(src, p, version)
}
