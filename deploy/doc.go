// Package deploy holds Lowrank's deployment files (the Dockerfile at the
// repository root, the kustomize base, the Grafana dashboard and the
// Prometheus alert rules) and the tests that check them without a cluster,
// a registry or a Docker engine. It is a module of its own so that the
// Kubernetes, kustomize, BuildKit and Prometheus libraries these tests need
// stay out of the server's build. Run them with
//
//	cd deploy && go test ./...
package deploy
