package client_test

import (
	"bytes"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// TestClientUpToDate regenerates the client from api/openapi.yaml into a
// temp dir and fails when client.gen.go differs: run `go generate ./client`.
// It needs the oapi-codegen module (from the module cache or the proxy) and
// is skipped in -short mode.
func TestClientUpToDate(t *testing.T) {
	if testing.Short() {
		t.Skip("regenerating the client needs the go tool and oapi-codegen")
	}
	cfg, err := os.ReadFile("cfg.yaml")
	if err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	out := filepath.Join(dir, "client.gen.go")
	tmpCfg := strings.Replace(string(cfg), "output: client.gen.go", "output: "+out, 1)
	if err := os.WriteFile(filepath.Join(dir, "cfg.yaml"), []byte(tmpCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("go", "run", "github.com/oapi-codegen/oapi-codegen/v2/cmd/oapi-codegen@v2.8.2",
		"-config", filepath.Join(dir, "cfg.yaml"), filepath.Join("..", "api", "openapi.yaml"))
	if msg, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("oapi-codegen: %v\n%s", err, msg)
	}
	want, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	have, err := os.ReadFile("client.gen.go")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(want, have) {
		t.Fatal("client/client.gen.go is stale: run `go generate ./client`")
	}
}
