// Package api holds Lowrank's HTTP contract, api/openapi.yaml, embedded so the
// server can serve it at /openapi.yaml and tests can validate against it.
package api

import _ "embed"

// Spec is the OpenAPI 3.0.3 document describing every route the server has.
//
//go:embed openapi.yaml
var Spec []byte
