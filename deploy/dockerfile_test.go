package deploy_test

import (
	"bufio"
	"bytes"
	"debug/elf"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/moby/buildkit/frontend/dockerfile/instructions"
	"github.com/moby/buildkit/frontend/dockerfile/linter"
	"github.com/moby/buildkit/frontend/dockerfile/parser"
	"github.com/moby/patternmatcher"
	"github.com/moby/patternmatcher/ignorefile"
)

// The Dockerfile is read with BuildKit's own parser and instruction
// decoder (the code docker build runs), with its linter on, so what passes
// here is what BuildKit accepts. No engine or registry is needed.

// dockerfile is the parsed Dockerfile.
type dockerfile struct {
	ast      *parser.Node
	stages   []instructions.Stage
	metaArgs map[string]string // ARGs before the first FROM, with their defaults
}

func parseDockerfile(t *testing.T) *dockerfile {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(repoRoot, "Dockerfile"))
	if err != nil {
		t.Fatal(err)
	}
	res, err := parser.Parse(bytes.NewReader(b))
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	for _, w := range res.Warnings {
		t.Errorf("Dockerfile: parser warning: %s", w.Short)
	}
	lint := linter.New(&linter.Config{Warn: func(rule, _, _, msg string, loc []parser.Range) {
		line := 0
		if len(loc) > 0 {
			line = loc[0].Start.Line
		}
		t.Errorf("Dockerfile:%d: lint %s: %s", line, rule, msg)
	}})
	stages, metaArgs, err := instructions.Parse(res.AST, lint)
	if err != nil {
		t.Fatalf("Dockerfile: %v", err)
	}
	df := &dockerfile{ast: res.AST, stages: stages, metaArgs: map[string]string{}}
	for _, a := range metaArgs {
		for _, kv := range a.Args {
			df.metaArgs[kv.Key] = kv.ValueString()
		}
	}
	return df
}

// varRe matches $NAME and ${NAME}; the name is submatch 1 or 2.
var varRe = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}|\$([A-Za-z_][A-Za-z0-9_]*)`)

func varName(m []string) string { return m[1] + m[2] }

// expandMeta substitutes the meta ARGs' defaults, as a build without
// --build-arg does.
func (df *dockerfile) expandMeta(s string) string {
	return varRe.ReplaceAllStringFunc(s, func(m string) string {
		return df.metaArgs[varName(varRe.FindStringSubmatch(m))]
	})
}

func (df *dockerfile) stage(t *testing.T, name string) *instructions.Stage {
	t.Helper()
	for i := range df.stages {
		if df.stages[i].Name == name {
			return &df.stages[i]
		}
	}
	t.Fatalf("Dockerfile has no stage %q", name)
	return nil
}

// final is the stage docker build produces without --target.
func (df *dockerfile) final() *instructions.Stage { return &df.stages[len(df.stages)-1] }

func commands[T instructions.Command](s *instructions.Stage) []T {
	var out []T
	for _, c := range s.Commands {
		if v, ok := c.(T); ok {
			out = append(out, v)
		}
	}
	return out
}

// runLines joins each RUN's command line into one string.
func runLines(s *instructions.Stage) []string {
	var out []string
	for _, r := range commands[*instructions.RunCommand](s) {
		out = append(out, strings.Join(r.CmdLine, " "))
	}
	return out
}

// stageEnv is what the stage's ENV instructions set.
func stageEnv(s *instructions.Stage) map[string]string {
	env := map[string]string{}
	for _, e := range commands[*instructions.EnvCommand](s) {
		for _, kv := range e.Env {
			env[kv.Key] = kv.Value
		}
	}
	return env
}

func TestDockerfileStages(t *testing.T) {
	df := parseDockerfile(t)
	if len(df.stages) != 2 {
		t.Fatalf("%d stages, want 2 (build, runtime)", len(df.stages))
	}
	build, final := df.stage(t, "build"), df.final()
	buildImage, finalImage := df.expandMeta(build.BaseName), df.expandMeta(final.BaseName)

	// The builder's Go is the one go.mod asks for.
	goVersion := goDirective(t)
	if want := "golang:" + goVersion + "-"; !strings.HasPrefix(buildImage, want) {
		t.Errorf("build stage FROM %s, want %s<debian release> (go.mod says go %s)", buildImage, want, goVersion)
	}
	// Same Debian release on both sides, so the runtime's glibc and
	// OpenBLAS are those the binary was linked against.
	release := buildImage[strings.LastIndex(buildImage, "-")+1:]
	if finalImage != "debian:"+release+"-slim" {
		t.Errorf("runtime stage FROM %s, want debian:%s-slim (the build stage's release)", finalImage, release)
	}
	copies := commands[*instructions.CopyCommand](final)
	if len(copies) != 1 || copies[0].From != "build" {
		t.Errorf("the runtime stage should copy exactly one thing, the binary, from the build stage: %+v", copies)
	}
}

func TestDockerfileBuildsWithOpenBLAS(t *testing.T) {
	df := parseDockerfile(t)
	build := df.stage(t, "build")
	runs := strings.Join(runLines(build), "\n")
	for _, want := range []string{"libopenblas-dev", "liblapacke-dev", "pkg-config"} {
		if !strings.Contains(runs, want) {
			t.Errorf("the build stage does not install %s", want)
		}
	}
	goBuild := ""
	for _, r := range runLines(build) {
		if strings.Contains(r, "go build") {
			goBuild = r
		}
	}
	if goBuild == "" {
		t.Fatal("the build stage runs no go build")
	}
	for _, want := range []string{"-tags openblas", "CGO_ENABLED=1", "./cmd/server", "-X main.version="} {
		if !strings.Contains(goBuild, want) {
			t.Errorf("go build lacks %q: %s", want, goBuild)
		}
	}
}

// debianPackageOf names the Debian package that provides each shared
// library the server may link; the C library itself is in every image.
var debianPackageOf = map[string]string{
	"libopenblas.so.0": "libopenblas0-pthread",
	"liblapacke.so.3":  "liblapacke",
	"libc.so.6":        "",
	"libm.so.6":        "",
	"libpthread.so.0":  "",
	"libdl.so.2":       "",
	"libresolv.so.2":   "",
}

// TestDockerfileRuntimeLibraries builds the server as the image does (see
// dockerBuild) and
// checks that the runtime stage installs exactly the packages of the
// libraries the binary links (DT_NEEDED), nothing more.
func TestDockerfileRuntimeLibraries(t *testing.T) {
	if err := exec.Command("pkg-config", "--exists", "openblas", "lapacke").Run(); err != nil {
		t.Skip("pkg-config finds no openblas and lapacke: cannot link the image's binary here (apt-get install pkg-config libopenblas-dev liblapacke-dev)")
	}
	bin := dockerBuild(t)
	f, err := elf.Open(bin)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	libs, err := f.ImportedLibraries()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]bool{}
	for _, lib := range libs {
		pkg, ok := debianPackageOf[lib]
		if !ok {
			t.Errorf("the server links %s, which no runtime package is known to provide", lib)
		}
		if pkg != "" {
			want[pkg] = true
		}
	}
	if !want["libopenblas0-pthread"] || !want["liblapacke"] {
		t.Errorf("the openblas build links %v: not OpenBLAS and LAPACKE?", libs)
	}
	got := map[string]bool{}
	for _, r := range runLines(parseDockerfile(t).final()) {
		pkgs := aptInstalled(r)
		for _, pkg := range pkgs {
			got[pkg] = true
		}
		// Recommends would pull in more than the libraries; the package
		// lists are only needed while installing.
		if len(pkgs) > 0 && (!strings.Contains(r, "--no-install-recommends") || !strings.Contains(r, "rm -rf /var/lib/apt/lists")) {
			t.Errorf("the runtime stage's apt-get install should use --no-install-recommends and remove /var/lib/apt/lists in the same RUN: %s", r)
		}
	}
	for pkg := range want {
		if !got[pkg] {
			t.Errorf("the runtime stage does not install %s", pkg)
		}
	}
	for pkg := range got {
		if !want[pkg] {
			t.Errorf("the runtime stage installs %s, which the binary does not need", pkg)
		}
	}
}

// aptInstalled lists the packages of each "apt-get install" in a shell line.
func aptInstalled(line string) []string {
	var pkgs []string
	for _, cmd := range regexp.MustCompile(`&&|;|\|\|`).Split(line, -1) {
		f := strings.Fields(cmd)
		i := slices.Index(f, "install")
		if i < 1 || f[i-1] != "apt-get" {
			continue
		}
		for _, w := range f[i+1:] {
			if !strings.HasPrefix(w, "-") {
				pkgs = append(pkgs, w)
			}
		}
	}
	return pkgs
}

func TestAptInstalled(t *testing.T) {
	got := aptInstalled("apt-get update && apt-get install -y --no-install-recommends a b-dev && rm -rf x; install -d y")
	if !slices.Equal(got, []string{"a", "b-dev"}) {
		t.Errorf("aptInstalled = %v", got)
	}
}

// dockerfileUID is the numeric user the image runs as.
func dockerfileUID(t *testing.T) int64 {
	t.Helper()
	users := commands[*instructions.UserCommand](parseDockerfile(t).final())
	if len(users) == 0 {
		t.Fatal("the runtime stage has no USER: it would run as root")
	}
	u := users[len(users)-1].User
	uid, _, _ := strings.Cut(u, ":")
	n, err := strconv.ParseInt(uid, 10, 64)
	if err != nil {
		t.Fatalf("USER %s: want a numeric UID, so Kubernetes can check runAsNonRoot", u)
	}
	return n
}

func TestDockerfileRuntime(t *testing.T) {
	df := parseDockerfile(t)
	final := df.final()
	if uid := dockerfileUID(t); uid == 0 {
		t.Errorf("USER is root")
	}
	env := stageEnv(final)
	known := serverEnv(t)
	for k := range env {
		if _, ok := known[k]; !ok {
			t.Errorf("ENV %s: the server reads no such variable", k)
		}
	}
	// The port: the one the server listens on in the image.
	addr := known["LOWRANK_ADDR"]
	if v, ok := env["LOWRANK_ADDR"]; ok {
		addr = v
	}
	port := strconv.Itoa(int(portOf(t, addr)))
	var exposed []string
	for _, e := range commands[*instructions.ExposeCommand](final) {
		exposed = append(exposed, e.Ports...)
	}
	if !slices.Equal(exposed, []string{port}) && !slices.Equal(exposed, []string{port + "/tcp"}) {
		t.Errorf("EXPOSE %v, the server listens on %s", exposed, port)
	}
	// Writable data on a volume, the rest may be read-only.
	dataDir, ok := env["LOWRANK_DATA_DIR"]
	if !ok || !filepath.IsAbs(dataDir) {
		t.Errorf("the image should set LOWRANK_DATA_DIR to an absolute path (the server's default, %q, is relative to a read-only working directory)", known["LOWRANK_DATA_DIR"])
	}
	var volumes []string
	for _, v := range commands[*instructions.VolumeCommand](final) {
		volumes = append(volumes, v.Volumes...)
	}
	if !slices.Contains(volumes, dataDir) {
		t.Errorf("VOLUME %v does not hold LOWRANK_DATA_DIR %s", volumes, dataDir)
	}
	// The server stops gracefully on SIGTERM; the exec form makes it PID 1,
	// so the signal reaches it rather than a shell.
	sig := commands[*instructions.StopSignalCommand](final)
	if len(sig) != 1 || sig[0].Signal != "SIGTERM" {
		t.Errorf("STOPSIGNAL %+v, want SIGTERM", sig)
	}
	eps := commands[*instructions.EntrypointCommand](final)
	if len(eps) != 1 || eps[0].PrependShell || len(eps[0].CmdLine) == 0 {
		t.Fatalf("want one ENTRYPOINT in exec form, got %+v", eps)
	}
	copies := commands[*instructions.CopyCommand](final)
	if len(copies) == 1 && copies[0].DestPath != eps[0].CmdLine[0] {
		t.Errorf("ENTRYPOINT %s is not the copied binary %s", eps[0].CmdLine[0], copies[0].DestPath)
	}
	labels := map[string]string{}
	for _, l := range commands[*instructions.LabelCommand](final) {
		for _, kv := range l.Labels {
			labels[kv.Key] = kv.Value
		}
	}
	for _, k := range []string{"title", "description", "source", "version", "revision"} {
		if labels["org.opencontainers.image."+k] == "" {
			t.Errorf("no OCI label org.opencontainers.image.%s", k)
		}
	}
}

// TestDockerfileVariablesDeclared: a variable used in a stage must be
// declared there (ARG or ENV); ARGs before the first FROM are visible only
// to FROM lines unless a stage declares them again. BuildKit would expand
// an undeclared one silently to "".
func TestDockerfileVariablesDeclared(t *testing.T) {
	df := parseDockerfile(t)
	var declared map[string]bool
	for _, n := range df.ast.Children {
		switch strings.ToLower(n.Value) {
		case "from":
			for _, m := range varRe.FindAllStringSubmatch(n.Original, -1) {
				if _, ok := df.metaArgs[varName(m)]; !ok {
					t.Errorf("Dockerfile:%d: FROM uses $%s, not declared before the first FROM", n.StartLine, varName(m))
				}
			}
			declared = map[string]bool{}
			continue
		}
		if declared == nil {
			continue // a meta ARG
		}
		for _, m := range varRe.FindAllStringSubmatch(n.Original, -1) {
			if !declared[varName(m)] {
				t.Errorf("Dockerfile:%d: $%s is not declared in this stage (%s)", n.StartLine, varName(m), strings.ToUpper(n.Value))
			}
		}
		cmd, err := instructions.ParseInstruction(n)
		if err != nil {
			t.Fatal(err)
		}
		switch c := cmd.(type) {
		case *instructions.ArgCommand:
			for _, kv := range c.Args {
				declared[kv.Key] = true
			}
		case *instructions.EnvCommand:
			for _, kv := range c.Env {
				declared[kv.Key] = true
			}
		}
	}
}

var secretName = regexp.MustCompile(`(?i)(passw(or)?d|secret|token|api_?keys?$|credential|private_?key)`)

// TestDockerfileNoSecrets: no ARG, ENV or LABEL carries a secret-looking
// name or value, and nothing secret-looking is copied in.
func TestDockerfileNoSecrets(t *testing.T) {
	df := parseDockerfile(t)
	keyLike := regexp.MustCompile(`(?i)(-----BEGIN|AKIA[0-9A-Z]{16}|bearer\s+\S)`)
	check := func(where, k, v string) {
		if secretName.MatchString(k) {
			t.Errorf("%s %s: a secret must not be baked into the image (mount it at run time)", where, k)
		}
		if keyLike.MatchString(v) {
			t.Errorf("%s %s has a value that looks like a credential", where, k)
		}
	}
	for k, v := range df.metaArgs {
		check("ARG", k, v)
	}
	for _, s := range df.stages {
		for _, c := range s.Commands {
			switch c := c.(type) {
			case *instructions.ArgCommand:
				for _, kv := range c.Args {
					check("ARG", kv.Key, kv.ValueString())
				}
			case *instructions.EnvCommand:
				for _, kv := range c.Env {
					check("ENV", kv.Key, kv.Value)
				}
			case *instructions.LabelCommand:
				for _, kv := range c.Labels {
					check("LABEL", kv.Key, kv.Value)
				}
			case *instructions.CopyCommand:
				for _, src := range c.SourcePaths {
					if regexp.MustCompile(`(?i)(\.env$|\.pem$|id_rsa|api-keys|secret)`).MatchString(src) {
						t.Errorf("COPY %s: looks like a secret", src)
					}
				}
			}
		}
	}
	if !secretName.MatchString("LOWRANK_API_KEYS") || !secretName.MatchString("DB_PASSWORD") ||
		secretName.MatchString("LOWRANK_DATA_DIR") || secretName.MatchString("org.opencontainers.image.authors") {
		t.Errorf("the secret-name pattern is broken")
	}
}

// dockerignored reports whether .dockerignore keeps a path (relative to
// the repository root, slash-separated) out of the build context.
func dockerignored(t *testing.T) func(string) bool {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, ".dockerignore"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	patterns, err := ignorefile.ReadAll(f)
	if err != nil {
		t.Fatal(err)
	}
	pm, err := patternmatcher.New(patterns)
	if err != nil {
		t.Fatal(err)
	}
	return func(p string) bool {
		ex, err := pm.MatchesOrParentMatches(p)
		if err != nil {
			t.Fatal(err)
		}
		return ex
	}
}

var dockerBuilt struct {
	once      sync.Once
	path, err string
}

// dockerBuild does what the build stage does, without Docker: it copies
// the build context (the repository less what .dockerignore excludes) to a
// temporary directory and runs the Dockerfile's own go build line there,
// writing the binary where the runtime stage's COPY --from takes it from.
// It needs the OpenBLAS and LAPACKE development files the stage installs.
func dockerBuild(t *testing.T) string {
	t.Helper()
	if err := exec.Command("pkg-config", "--exists", "openblas", "lapacke").Run(); err != nil {
		t.Skip("pkg-config finds no openblas and lapacke: cannot build as the image does here (apt-get install pkg-config libopenblas-dev liblapacke-dev)")
	}
	dockerBuilt.once.Do(func() {
		df := parseDockerfile(t)
		copies := commands[*instructions.CopyCommand](df.final())
		goBuild := ""
		for _, r := range runLines(df.stage(t, "build")) {
			if strings.Contains(r, "go build") {
				goBuild = r
			}
		}
		if len(copies) != 1 || len(copies[0].SourcePaths) != 1 || goBuild == "" {
			dockerBuilt.err = "Dockerfile: want one go build and one COPY --from=build of its output"
			return
		}
		out := copies[0].SourcePaths[0]
		if !strings.Contains(goBuild, "-o "+out) {
			dockerBuilt.err = fmt.Sprintf("go build does not write %s, which the runtime stage copies", out)
			return
		}
		ctxDir := filepath.Join(binDir, "context")
		if err := copyContext(t, ctxDir); err != nil {
			dockerBuilt.err = err.Error()
			return
		}
		dockerBuilt.path = filepath.Join(binDir, "lowrank-docker")
		cmd := exec.Command("sh", "-c", strings.Replace(goBuild, "-o "+out, "-o "+dockerBuilt.path, 1))
		cmd.Dir = ctxDir
		cmd.Env = append(os.Environ(), "VERSION=v0.0.0-dockertest", "GOFLAGS=-mod=readonly", "GOWORK=off")
		if b, err := cmd.CombinedOutput(); err != nil {
			dockerBuilt.err = fmt.Sprintf("the Dockerfile's go build in its build context: %v\n%s", err, b)
		}
	})
	if dockerBuilt.err != "" {
		t.Fatal(dockerBuilt.err)
	}
	return dockerBuilt.path
}

// copyContext copies what docker build would send as the context.
func copyContext(t *testing.T, to string) error {
	excluded := dockerignored(t)
	return filepath.WalkDir(repoRoot, func(p string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(repoRoot, p)
		if err != nil || rel == "." {
			return err
		}
		rel = filepath.ToSlash(rel)
		if d.IsDir() {
			if d.Name() == ".git" {
				return filepath.SkipDir
			}
			return nil
		}
		if excluded(rel) || !d.Type().IsRegular() {
			return nil
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		if err := os.MkdirAll(filepath.Join(to, filepath.Dir(rel)), 0o755); err != nil {
			return err
		}
		return os.WriteFile(filepath.Join(to, rel), b, 0o644)
	})
}

// TestDockerfileBuildContext: the Dockerfile's go build succeeds on the
// build context alone, and the binary it makes runs on OpenBLAS with the
// version it was given.
func TestDockerfileBuildContext(t *testing.T) {
	bin := dockerBuild(t)
	out, err := exec.Command("go", "version", "-m", bin).CombinedOutput()
	if err != nil {
		t.Fatalf("go version -m: %v\n%s", err, out)
	}
	for _, want := range []string{"-tags=openblas", "CGO_ENABLED=1", "-trimpath=true"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("the image's binary was not built with %s:\n%s", want, out)
		}
	}
	ts := startBinary(t, bin, nil)
	code, body := ts.do(t, "GET", "/v1/info", nil)
	if code != 200 {
		t.Fatalf("GET /v1/info: %d %s", code, body)
	}
	var info struct{ Version, Backend string }
	if err := json.Unmarshal(body, &info); err != nil {
		t.Fatal(err)
	}
	if info.Version != "v0.0.0-dockertest" || info.Backend != "openblas" {
		t.Errorf("the image's binary reports version %q backend %q, want v0.0.0-dockertest on openblas", info.Version, info.Backend)
	}
}

func TestDockerignore(t *testing.T) {
	excluded := dockerignored(t)
	// Every file the image's build reads is in the context.
	need := buildInputs(t)
	if len(need) < 10 {
		t.Fatalf("go list found only %d build inputs", len(need))
	}
	for _, p := range need {
		if excluded(p) {
			t.Errorf(".dockerignore excludes %s, which the build needs", p)
		}
	}
	// And what must not be sent is not.
	for _, p := range []string{".git/config", "bin/server", "data/lowrank.db", "deploy/base/api-keys.example",
		"bench/out/x.json", "internal/jobs/service_test.go", "internal/tensorio/testdata/x.npy", ".ci/run", "Dockerfile"} {
		if !excluded(p) {
			t.Errorf(".dockerignore lets %s into the build context", p)
		}
	}
}

// buildInputs lists, relative to the repository root, every file go build
// reads for the image's binary: go.mod, go.sum and each main-module
// package's Go, cgo and embedded files.
func buildInputs(t *testing.T) []string {
	t.Helper()
	cmd := exec.Command("go", "list", "-deps", "-tags", "openblas", "-json=Dir,Module,GoFiles,CgoFiles,CFiles,HFiles,EmbedFiles", "./cmd/server")
	cmd.Dir = repoRoot
	cmd.Env = append(os.Environ(), "CGO_ENABLED=1")
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	root, err := filepath.Abs(repoRoot)
	if err != nil {
		t.Fatal(err)
	}
	files := []string{"go.mod", "go.sum"}
	dec := json.NewDecoder(bytes.NewReader(out))
	for {
		var p struct {
			Dir                                           string
			Module                                        *struct{ Path string }
			GoFiles, CgoFiles, CFiles, HFiles, EmbedFiles []string
		}
		if err := dec.Decode(&p); err == io.EOF {
			break
		} else if err != nil {
			t.Fatal(err)
		}
		if p.Module == nil || p.Module.Path != "github.com/lowrank/lowrank" {
			continue
		}
		rel, err := filepath.Rel(root, p.Dir)
		if err != nil {
			t.Fatal(err)
		}
		for _, list := range [][]string{p.GoFiles, p.CgoFiles, p.CFiles, p.HFiles, p.EmbedFiles} {
			for _, f := range list {
				files = append(files, filepath.ToSlash(filepath.Join(rel, f)))
			}
		}
	}
	return files
}

// goDirective is the go version the main module's go.mod asks for.
func goDirective(t *testing.T) string {
	t.Helper()
	f, err := os.Open(filepath.Join(repoRoot, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "go "); ok {
			return strings.TrimSpace(v)
		}
	}
	t.Fatal(fmt.Errorf("go.mod has no go directive"))
	return ""
}
