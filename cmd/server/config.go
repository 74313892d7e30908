package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"
)

// config is everything the server is told at start.
type config struct {
	Addr           string
	DataDir        string
	Workers        int
	QueueCapacity  int
	MaxUploadBytes int64
	MaxElements    int64
	MaxRank        int
	MaxIterations  int
	JobTimeout     time.Duration
	APIKeys        []string
	APIKeysFile    string
	LogFormat      string
	LogLevel       string
	ShutdownGrace  time.Duration
	Retention      time.Duration
	MaxInline      int64
	MaxUploads     int
	MetricsAddr    string
}

// parseConfig reads flags, each defaulting to its LOWRANK_* environment
// variable, which defaults to the built-in value. flag.ErrHelp is returned
// after --help has printed the usage.
func parseConfig(args []string, getenv func(string) string, out io.Writer) (*config, error) {
	c := &config{}
	fs := flag.NewFlagSet("lowrank", flag.ContinueOnError)
	fs.SetOutput(out)
	var envErrs []error
	env := func(name string) (string, bool) {
		v := getenv("LOWRANK_" + name)
		return v, v != ""
	}
	str := func(p *string, flagName, envName, def, usage string) {
		if v, ok := env(envName); ok {
			def = v
		}
		fs.StringVar(p, flagName, def, usage+" (env LOWRANK_"+envName+")")
	}
	integer := func(p *int, flagName, envName string, def int, usage string) {
		if v, ok := env(envName); ok {
			n, err := strconv.Atoi(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("LOWRANK_%s: %w", envName, err))
			}
			def = n
		}
		fs.IntVar(p, flagName, def, usage+" (env LOWRANK_"+envName+")")
	}
	int64v := func(p *int64, flagName, envName string, def int64, usage string) {
		if v, ok := env(envName); ok {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("LOWRANK_%s: %w", envName, err))
			}
			def = n
		}
		fs.Int64Var(p, flagName, def, usage+" (env LOWRANK_"+envName+")")
	}
	duration := func(p *time.Duration, flagName, envName string, def time.Duration, usage string) {
		if v, ok := env(envName); ok {
			d, err := time.ParseDuration(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("LOWRANK_%s: %w", envName, err))
			}
			def = d
		}
		fs.DurationVar(p, flagName, def, usage+" (env LOWRANK_"+envName+")")
	}

	var keys string
	str(&c.Addr, "addr", "ADDR", ":8080", "listen address")
	str(&c.DataDir, "data-dir", "DATA_DIR", "./data", "directory for the SQLite database and blobs")
	integer(&c.Workers, "workers", "WORKERS", defaultWorkers(), "jobs run at once; each gets at least GOMAXPROCS/workers kernel threads, and all of them when alone")
	integer(&c.QueueCapacity, "queue-capacity", "QUEUE_CAPACITY", 256, "queued + running jobs accepted before 429")
	int64v(&c.MaxUploadBytes, "max-upload-bytes", "MAX_UPLOAD_BYTES", 4<<30, "largest accepted upload in bytes")
	int64v(&c.MaxElements, "max-elements", "MAX_ELEMENTS", 1<<28, "largest input tensor, in elements")
	integer(&c.MaxRank, "max-rank", "MAX_RANK", 4096, "largest rank or component count a job may ask for")
	integer(&c.MaxIterations, "max-iterations", "MAX_ITERATIONS", 1000, "most iterations an iterative method may run")
	duration(&c.JobTimeout, "job-timeout", "JOB_TIMEOUT", time.Hour, "longest a job may run (0: no limit)")
	str(&keys, "api-keys", "API_KEYS", "", "comma-separated API keys; when set (or --api-keys-file), /v1 requires Authorization: Bearer <key>")
	str(&c.APIKeysFile, "api-keys-file", "API_KEYS_FILE", "", "file with one API key per line (# comments)")
	str(&c.LogFormat, "log-format", "LOG_FORMAT", "json", "log format: json or console")
	str(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
	duration(&c.ShutdownGrace, "shutdown-grace", "SHUTDOWN_GRACE", 30*time.Second, "time given to requests and running jobs at shutdown; jobs still running are requeued")
	int64v(&c.MaxInline, "max-inline-elements", "MAX_INLINE_ELEMENTS", 1<<20, "largest inline tensor in a job request, in elements")
	integer(&c.MaxUploads, "max-concurrent-uploads", "MAX_CONCURRENT_UPLOADS", 16, "uploads taken at once; one more is answered 429")
	str(&c.MetricsAddr, "metrics-addr", "METRICS_ADDR", "", "when set, /metrics is served on this address instead of the main one")
	duration(&c.Retention, "retention", "RETENTION", 7*24*time.Hour, "how long uploaded tensors and finished jobs (with their factors) are kept (0: forever)")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: lowrank [flags]\n\nLowrank serves low-rank decompositions of weight tensors over HTTP.\nEvery flag can also be set by the environment variable named beside it; a flag wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	if len(envErrs) > 0 {
		return nil, errors.Join(envErrs...)
	}
	if fs.NArg() > 0 {
		return nil, fmt.Errorf("unexpected arguments: %v", fs.Args())
	}
	for _, k := range strings.Split(keys, ",") {
		if k = strings.TrimSpace(k); k != "" {
			c.APIKeys = append(c.APIKeys, k)
		}
	}
	if c.APIKeysFile != "" {
		fileKeys, err := readKeysFile(c.APIKeysFile)
		if err != nil {
			return nil, err
		}
		c.APIKeys = append(c.APIKeys, fileKeys...)
	}
	return c, c.validate()
}

func defaultWorkers() int {
	// One job per two cores keeps a few threads per kernel while still
	// overlapping I/O; at least two, so one job's database and file work
	// overlaps another's compute (small jobs ran 1.5× faster on 2 cores),
	// and a job alone still takes every core (jobs.threadBudget).
	return max(2, runtime.GOMAXPROCS(0)/2)
}

func (c *config) validate() error {
	switch {
	case c.Workers < 1:
		return fmt.Errorf("--workers must be ≥ 1, got %d", c.Workers)
	case c.QueueCapacity < 1:
		return fmt.Errorf("--queue-capacity must be ≥ 1, got %d", c.QueueCapacity)
	case c.MaxUploadBytes < 1:
		return fmt.Errorf("--max-upload-bytes must be ≥ 1, got %d", c.MaxUploadBytes)
	case c.MaxElements < 1:
		return fmt.Errorf("--max-elements must be ≥ 1, got %d", c.MaxElements)
	case c.MaxRank < 1:
		return fmt.Errorf("--max-rank must be ≥ 1, got %d", c.MaxRank)
	case c.MaxIterations < 1:
		return fmt.Errorf("--max-iterations must be ≥ 1, got %d", c.MaxIterations)
	case c.JobTimeout < 0:
		return fmt.Errorf("--job-timeout must be ≥ 0, got %s", c.JobTimeout)
	case c.LogFormat != "json" && c.LogFormat != "console":
		return fmt.Errorf("--log-format must be json or console, got %q", c.LogFormat)
	case c.MaxInline < 1:
		return fmt.Errorf("--max-inline-elements must be ≥ 1, got %d", c.MaxInline)
	case c.MaxUploads < 1:
		return fmt.Errorf("--max-concurrent-uploads must be ≥ 1, got %d", c.MaxUploads)
	case c.Retention < 0:
		return fmt.Errorf("--retention must be ≥ 0, got %s", c.Retention)
	case c.ShutdownGrace < 0:
		return fmt.Errorf("--shutdown-grace must be ≥ 0, got %s", c.ShutdownGrace)
	}
	return nil
}

func readKeysFile(path string) ([]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("--api-keys-file: %w", err)
	}
	defer f.Close()
	var keys []string
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line != "" && !strings.HasPrefix(line, "#") {
			keys = append(keys, line)
		}
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("--api-keys-file: %w", err)
	}
	if len(keys) == 0 {
		return nil, fmt.Errorf("--api-keys-file %s holds no keys", path)
	}
	return keys, nil
}
