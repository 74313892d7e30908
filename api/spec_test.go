package api_test

import (
	"context"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/lowrank/lowrank/api"
)

func TestSpecIsValid(t *testing.T) {
	doc, err := openapi3.NewLoader().LoadFromData(api.Spec)
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(context.Background()); err != nil {
		t.Fatal(err)
	}
	if doc.OpenAPI != "3.0.3" {
		t.Errorf("openapi %q, want 3.0.3", doc.OpenAPI)
	}
	for _, p := range []string{"/v1/tensors", "/v1/tensors/{id}", "/v1/jobs", "/v1/jobs/{id}", "/v1/jobs/{id}/factors", "/v1/jobs/{id}/factors/{name}", "/v1/jobs/{id}/spectrum.svg", "/v1/jobs/{id}/spectrum.png", "/v1/info", "/healthz", "/readyz", "/metrics"} {
		if doc.Paths.Find(p) == nil {
			t.Errorf("path %s missing", p)
		}
	}
}
