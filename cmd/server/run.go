package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"go.uber.org/zap"
	"go.uber.org/zap/zapcore"

	"github.com/lowrank/lowrank/api"
	"github.com/lowrank/lowrank/internal/handlers"
	"github.com/lowrank/lowrank/internal/jobs"
	"github.com/lowrank/lowrank/internal/linalg"
	"github.com/lowrank/lowrank/internal/tensorio"
)

// version is set at build time: -ldflags "-X main.version=v1.2.3".
var version = "dev"

// run starts the server and blocks until ctx is canceled, then shuts down
// gracefully. Once listening it writes one line to stdout,
//
//	lowrank listening on http://HOST:PORT
//
// so a caller that asked for port 0 learns the address.
func run(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	return runWith(ctx, args, getenv, stdout, stderr, hooks{})
}

// hooks let tests change what run builds.
type hooks struct {
	// registry, when set, may add methods (e.g. a controllable one).
	registry func(jobs.Registry)
	// now replaces the clock; cleanInterval, the cleaner's period.
	now           func() time.Time
	cleanInterval time.Duration
}

func runWith(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer, h hooks) error {
	cfg, err := parseConfig(args, getenv, stderr)
	if errors.Is(err, flag.ErrHelp) {
		return nil
	}
	if err != nil {
		return err
	}
	log, err := newLogger(cfg, stderr)
	if err != nil {
		return err
	}
	defer func() { _ = log.Sync() }()

	st, err := openStores(ctx, cfg)
	if err != nil {
		return err
	}
	defer st.close()
	log.Info("storage", zap.String("database", st.database), zap.String("blobs", st.blobStore))
	meta, blobs := st.meta, st.blobs

	// The parallelism budget: the cores given to the process are shared by
	// the pool's workers; a job gets at least its even share and, when
	// the others leave cores free, takes those too (jobs.threadBudget).
	procs := runtime.GOMAXPROCS(0)
	threads := max(1, procs/cfg.Workers)
	backend := linalg.Default(threads)
	log.Info("numeric backend", zap.String("backend", backend.Name()), zap.String("describe", linalg.Describe(backend)),
		zap.Int("threads_per_job", backend.Threads()), zap.Int("threads", procs),
		zap.Int("workers", cfg.Workers), zap.Int("gomaxprocs", procs), zap.String("version", version))

	reg := prometheus.NewRegistry()
	reg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))

	limits := jobs.Limits{MaxElements: cfg.MaxElements, MaxRank: cfg.MaxRank, MaxIterations: cfg.MaxIterations, MaxInlineElements: cfg.MaxInline}
	codec := jobs.TensorioCodec{Limits: tensorio.Limits{MaxFileBytes: cfg.MaxUploadBytes, MaxElements: cfg.MaxElements}}
	registry := jobs.DefaultRegistry()
	if h.registry != nil {
		h.registry(registry)
	}
	svc, err := jobs.New(ctx, jobs.Config{
		Queue: st.queue, Meta: meta, Blobs: blobs, Codec: codec, Registry: registry, Backend: backend, Threads: procs,
		SingleProcess: st.singleProcess, RescueAfter: cfg.RescueAfter,
		Workers: cfg.Workers, QueueCapacity: cfg.QueueCapacity, Limits: limits, JobTimeout: cfg.JobTimeout,
		Logger: log.Named("jobs"), Metrics: reg, Version: version,
		Retention: cfg.Retention, CleanInterval: h.cleanInterval, Now: h.now, Compressions: st.compressions,
	})
	if err != nil {
		return err
	}
	handler, err := handlers.New(handlers.Deps{
		Logger: log.Named("http"), Registry: reg, Gatherer: reg, Meta: meta, Blobs: blobs, Codec: codec, Jobs: svc, Compressions: svc,
		Info: handlers.Info{Version: version, Backend: backend.Name(), BackendDescription: linalg.Describe(backend),
			Threads: backend.Threads(), Workers: cfg.Workers,
			QueueCapacity: cfg.QueueCapacity, MaxUploadBytes: cfg.MaxUploadBytes, Retention: cfg.Retention,
			Storage: &st.kinds},
		APIKeys: cfg.APIKeys, Spec: api.Spec, Ready: svc.Ping, Now: h.now,
		MaxConcurrentUploads: cfg.MaxUploads, NoMetrics: cfg.MetricsAddr != "",
	})
	if err != nil {
		return err
	}

	ln, err := net.Listen("tcp", cfg.Addr)
	if err != nil {
		return err
	}
	// Metrics on their own address stay reachable to a scraper inside
	// the cluster while the main port is exposed to clients.
	var metricsSrv *http.Server
	var mln net.Listener
	if cfg.MetricsAddr != "" {
		if mln, err = net.Listen("tcp", cfg.MetricsAddr); err != nil {
			ln.Close()
			return err
		}
		mux := http.NewServeMux()
		mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
		metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ErrorLog: zap.NewStdLog(log.Named("metrics"))}
	}
	srv := &http.Server{
		Handler:           handler,
		ReadHeaderTimeout: 10 * time.Second,
		// Uploads and downloads of large tensors may take minutes, so the
		// body timeouts are left to the clients; idle connections are not.
		IdleTimeout:    2 * time.Minute,
		MaxHeaderBytes: 64 << 10,
		ErrorLog:       zap.NewStdLog(log.Named("http")),
		BaseContext:    func(net.Listener) context.Context { return context.WithoutCancel(ctx) },
	}
	// River stops hard when its Start context ends; shutdown is instead
	// ordered by svc.Stop below, after the HTTP server has drained.
	if err := svc.Start(context.WithoutCancel(ctx)); err != nil {
		ln.Close()
		if mln != nil {
			mln.Close()
		}
		return err
	}
	serveErr := make(chan error, 2)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("listening", zap.String("addr", ln.Addr().String()), zap.Bool("auth", len(cfg.APIKeys) > 0))
	fmt.Fprintf(stdout, "lowrank listening on http://%s\n", ln.Addr())
	if metricsSrv != nil {
		go func() { serveErr <- metricsSrv.Serve(mln) }()
		log.Info("metrics listening", zap.String("addr", mln.Addr().String()))
		fmt.Fprintf(stdout, "lowrank metrics on http://%s/metrics\n", mln.Addr())
	}

	select {
	case err = <-serveErr:
		log.Error("server stopped", zap.Error(err))
	case <-ctx.Done():
		log.Info("shutting down", zap.Duration("grace", cfg.ShutdownGrace))
	}
	grace, cancel := context.WithTimeout(context.WithoutCancel(ctx), cfg.ShutdownGrace)
	defer cancel()
	if serr := srv.Shutdown(grace); serr != nil {
		log.Warn("http shutdown", zap.Error(serr))
	}
	if metricsSrv != nil {
		_ = metricsSrv.Shutdown(grace)
	}
	if jerr := svc.Stop(grace); jerr != nil {
		log.Warn("jobs shutdown", zap.Error(jerr))
	}
	log.Info("stopped")
	if errors.Is(err, http.ErrServerClosed) {
		err = nil
	}
	return err
}

func newLogger(cfg *config, w io.Writer) (*zap.Logger, error) {
	level, err := zapcore.ParseLevel(cfg.LogLevel)
	if err != nil {
		return nil, fmt.Errorf("--log-level: %w", err)
	}
	ec := zap.NewProductionEncoderConfig()
	ec.EncodeTime = zapcore.ISO8601TimeEncoder
	var enc zapcore.Encoder
	if cfg.LogFormat == "console" {
		ec.EncodeLevel = zapcore.CapitalLevelEncoder
		enc = zapcore.NewConsoleEncoder(ec)
	} else {
		enc = zapcore.NewJSONEncoder(ec)
	}
	return zap.New(zapcore.NewCore(enc, zapcore.Lock(zapcore.AddSync(w)), level)), nil
}
