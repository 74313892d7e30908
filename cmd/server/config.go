package main

import (
	"bufio"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/url"
	"os"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/store"
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

	// DatabaseURL is the Postgres database of the scale-out deployment;
	// "" keeps metadata and queue in SQLite under DataDir.
	DatabaseURL string
	// RescueAfter is how long after a replica stops heartbeating its
	// running jobs go to another replica (jobs.Config.RescueAfter).
	RescueAfter time.Duration
	// BlobURL is s3://bucket/prefix for blobs in S3; "" keeps them under
	// DataDir.
	BlobURL string
	S3      s3Flags
}

// s3Flags locate and authenticate an S3-compatible store.
type s3Flags struct {
	Endpoint             string // host[:port], no scheme
	Region               string
	AccessKey, SecretKey string
	Insecure             bool // plain http
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
	boolean := func(p *bool, flagName, envName string, def bool, usage string) {
		if v, ok := env(envName); ok {
			b, err := strconv.ParseBool(v)
			if err != nil {
				envErrs = append(envErrs, fmt.Errorf("LOWRANK_%s: %w", envName, err))
			}
			def = b
		}
		fs.BoolVar(p, flagName, def, usage+" (env LOWRANK_"+envName+")")
	}
	// A secret's environment value is read after parsing, not made the
	// flag's default, so --help never prints it; fallback names other
	// variables to try (as AWS_SECRET_ACCESS_KEY for the S3 secret).
	var secrets []func()
	secret := func(p *string, flagName, envName, usage string, fallback ...string) {
		names := "LOWRANK_" + envName
		for _, f := range fallback {
			names += ", then " + f
		}
		fs.StringVar(p, flagName, "", usage+" (env "+names+")")
		secrets = append(secrets, func() {
			if *p != "" {
				return
			}
			for _, name := range append([]string{"LOWRANK_" + envName}, fallback...) {
				if v := getenv(name); v != "" {
					*p = v
					return
				}
			}
		})
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
	secret(&keys, "api-keys", "API_KEYS", "comma-separated API keys; when set (or --api-keys-file), /v1 requires Authorization: Bearer <key>")
	str(&c.APIKeysFile, "api-keys-file", "API_KEYS_FILE", "", "file with one API key per line (# comments)")
	str(&c.LogFormat, "log-format", "LOG_FORMAT", "json", "log format: json or console")
	str(&c.LogLevel, "log-level", "LOG_LEVEL", "info", "log level: debug, info, warn, error")
	duration(&c.ShutdownGrace, "shutdown-grace", "SHUTDOWN_GRACE", 30*time.Second, "time given to requests and running jobs at shutdown; jobs still running are requeued")
	int64v(&c.MaxInline, "max-inline-elements", "MAX_INLINE_ELEMENTS", 1<<20, "largest inline tensor in a job request, in elements")
	integer(&c.MaxUploads, "max-concurrent-uploads", "MAX_CONCURRENT_UPLOADS", 16, "uploads taken at once; one more is answered 429")
	str(&c.MetricsAddr, "metrics-addr", "METRICS_ADDR", "", "when set, /metrics is served on this address instead of the main one")
	duration(&c.Retention, "retention", "RETENTION", 7*24*time.Hour, "how long uploaded tensors and finished jobs (with their factors) are kept (0: forever)")
	secret(&c.DatabaseURL, "database-url", "DATABASE_URL", "postgres://user:password@host:5432/db to keep metadata and the job queue in Postgres, shared by replicas (default: SQLite under --data-dir)")
	duration(&c.RescueAfter, "rescue-after", "RESCUE_AFTER", jobs.DefaultRescueAfter, "with --database-url, how long after a replica stops heartbeating (it died, or lost the database) its running jobs are run again by another replica, whatever their length; replicas heartbeat every fifth of it")
	str(&c.BlobURL, "blob-url", "BLOB_URL", "", "s3://bucket/prefix to keep tensors and factors in S3 (default: files under --data-dir)")
	str(&c.S3.Endpoint, "s3-endpoint", "S3_ENDPOINT", "", "S3 endpoint host[:port], e.g. s3.amazonaws.com or minio:9000")
	secret(&c.S3.Region, "s3-region", "S3_REGION", "S3 region", "AWS_REGION")
	secret(&c.S3.AccessKey, "s3-access-key", "S3_ACCESS_KEY", "S3 access key", "AWS_ACCESS_KEY_ID")
	secret(&c.S3.SecretKey, "s3-secret-key", "S3_SECRET_KEY", "S3 secret key", "AWS_SECRET_ACCESS_KEY")
	boolean(&c.S3.Insecure, "s3-insecure", "S3_INSECURE", false, "talk to the S3 endpoint over plain http (an in-cluster gateway)")
	fs.Usage = func() {
		fmt.Fprintf(out, "Usage: lowrank [flags]\n\nLowrank serves low-rank decompositions of weight tensors over HTTP.\nEvery flag can also be set by the environment variable named beside it; a flag wins.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	if err := fs.Parse(args); err != nil {
		return nil, err
	}
	for _, read := range secrets {
		read()
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
	case c.RescueAfter < time.Second:
		// Heartbeats come every fifth of it, at most five a second: a
		// shorter delay would take a replica for dead after a hiccup.
		return fmt.Errorf("--rescue-after must be ≥ 1s, got %s", c.RescueAfter)
	}
	if c.DatabaseURL != "" {
		// The URL may hold a password: errors name its scheme only.
		u, err := url.Parse(c.DatabaseURL)
		if err != nil || (u.Scheme != "postgres" && u.Scheme != "postgresql") {
			scheme := "none"
			if err == nil && u.Scheme != "" {
				scheme = u.Scheme
			}
			return fmt.Errorf("--database-url must be a postgres:// URL (or empty for SQLite under --data-dir); got one with scheme %s", scheme)
		}
	}
	if c.BlobURL != "" {
		if _, _, err := store.ParseS3URL(c.BlobURL); err != nil {
			return fmt.Errorf("--blob-url: %w", err)
		}
		switch {
		case c.S3.Endpoint == "":
			return errors.New("--blob-url is an S3 URL but --s3-endpoint (LOWRANK_S3_ENDPOINT) is not set; for AWS use s3.amazonaws.com")
		case strings.Contains(c.S3.Endpoint, "/"):
			return fmt.Errorf("--s3-endpoint is host[:port] without a scheme or path (use --s3-insecure for http), got %q", c.S3.Endpoint)
		}
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
