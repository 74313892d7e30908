package main

import (
	"math"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestWalkthrough runs docs/walkthrough.sh, the README's curl session,
// against a fresh server and checks the factors it saved.
func TestWalkthrough(t *testing.T) {
	t.Parallel()
	for _, tool := range []string{"bash", "curl"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Skipf("the walkthrough needs %s: %v", tool, err)
		}
	}
	script, err := filepath.Abs(filepath.Join("..", "..", "docs", "walkthrough.sh"))
	if err != nil {
		t.Fatal(err)
	}
	for _, auth := range []bool{false, true} {
		args := []string{}
		if auth {
			args = []string{"--api-keys", "k1"}
		}
		s := startServer(t, "", args...)
		out := t.TempDir()
		cmd := exec.CommandContext(t.Context(), "bash", script)
		cmd.Env = append(os.Environ(), "BASE_URL="+s.url, "OUT_DIR="+out, "API_KEY=")
		if auth {
			cmd.Env[len(cmd.Env)-1] = "API_KEY=k1"
		}
		cmd.WaitDelay = 5 * time.Second
		log, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("auth %v: walkthrough failed: %v\n%s", auth, err, log)
		}
		if !strings.Contains(string(log), "status succeeded") {
			t.Errorf("output lacks the final status:\n%s", log)
		}
		read := func(name string) []float64 {
			b, err := os.ReadFile(filepath.Join(out, name+".npy"))
			if err != nil {
				t.Fatal(err)
			}
			return f64s(decodeFile(t, b, ""))
		}
		u, sv, vt := read("U"), read("S"), read("Vt")
		// The script's matrix; rank 2 is its full rank, so the product
		// must give it back to float32 rounding (1e-5 relative to ‖A‖≈5.6).
		a := []float64{1, 2, 3, 4, 0, 1}
		if len(u) != 6 || len(sv) != 2 || len(vt) != 4 {
			t.Fatalf("factor sizes U %d S %d Vt %d, want 6, 2, 4", len(u), len(sv), len(vt))
		}
		for i := range 3 {
			for j := range 2 {
				v := u[i*2]*sv[0]*vt[j] + u[i*2+1]*sv[1]*vt[2+j]
				if math.Abs(v-a[i*2+j]) > 1e-5*5.6 {
					t.Errorf("auth %v: (U·S·Vt)[%d,%d] = %g, want %g", auth, i, j, v, a[i*2+j])
				}
			}
		}
	}
}
