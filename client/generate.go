// Package client is Lowrank's Go client, generated from api/openapi.yaml by
// oapi-codegen. Do not edit client.gen.go; run `go generate ./client` after
// changing the spec (TestClientUpToDate fails when it is stale).
package client

//go:generate go run github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2 -config cfg.yaml ../api/openapi.yaml
