package store

import (
	"context"
	"database/sql/driver"
	"errors"
	"sync"
)

// maxCachedStmts bounds one connection's statement cache; the queries of
// Lowrank and River are a few dozen fixed texts.
const maxCachedStmts = 256

// cachingConnector gives every SQLite connection a cache of prepared
// statements keyed by their text. River's driver and database/sql compile
// each query's SQL on every call, which was a quarter of the CPU time of a
// small job; a statement prepared once is only bound and stepped.
type cachingConnector struct{ driver.Connector }

func (c cachingConnector) Connect(ctx context.Context) (driver.Conn, error) {
	conn, err := c.Connector.Connect(ctx)
	if err != nil {
		return nil, err
	}
	for _, ok := range []bool{
		implements[driver.ExecerContext](conn), implements[driver.QueryerContext](conn),
		implements[driver.ConnPrepareContext](conn), implements[driver.ConnBeginTx](conn),
	} {
		if !ok {
			conn.Close()
			return nil, errors.New("store: the sqlite driver lacks a context method")
		}
	}
	return &cachingConn{Conn: conn, stmts: map[string]*cachedStmt{}}, nil
}

func implements[T any](v any) bool { _, ok := v.(T); return ok }

// cachingConn is one connection with its statements. database/sql uses a
// connection from one goroutine at a time; the lock covers Rows closed
// late.
type cachingConn struct {
	driver.Conn
	mu    sync.Mutex
	stmts map[string]*cachedStmt
}

type cachedStmt struct {
	st   driver.Stmt
	busy bool // its rows are open, so a nested use of the same text must not reset it
}

var (
	_ driver.ExecerContext      = (*cachingConn)(nil)
	_ driver.QueryerContext     = (*cachingConn)(nil)
	_ driver.ConnPrepareContext = (*cachingConn)(nil)
	_ driver.ConnBeginTx        = (*cachingConn)(nil)
	_ driver.Pinger             = (*cachingConn)(nil)
	_ driver.SessionResetter    = (*cachingConn)(nil)
	_ driver.Validator          = (*cachingConn)(nil)
)

// take returns q's cached statement marked busy, preparing it on first
// use, or nil when it cannot be used (busy, the cache full, or q not
// preparable: the uncached path then runs it or reports its error).
func (c *cachingConn) take(ctx context.Context, q string) *cachedStmt {
	c.mu.Lock()
	defer c.mu.Unlock()
	cs := c.stmts[q]
	if cs == nil {
		if len(c.stmts) >= maxCachedStmts {
			return nil
		}
		st, err := c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
		if err != nil {
			return nil
		}
		cs = &cachedStmt{st: st}
		c.stmts[q] = cs
	}
	if cs.busy {
		return nil
	}
	cs.busy = true
	return cs
}

func (c *cachingConn) release(cs *cachedStmt) {
	c.mu.Lock()
	cs.busy = false
	c.mu.Unlock()
}

func (c *cachingConn) ExecContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Result, error) {
	cs := c.take(ctx, q)
	if cs == nil {
		return c.Conn.(driver.ExecerContext).ExecContext(ctx, q, args)
	}
	defer c.release(cs)
	return cs.st.(driver.StmtExecContext).ExecContext(ctx, args)
}

func (c *cachingConn) QueryContext(ctx context.Context, q string, args []driver.NamedValue) (driver.Rows, error) {
	cs := c.take(ctx, q)
	if cs == nil {
		return c.Conn.(driver.QueryerContext).QueryContext(ctx, q, args)
	}
	rows, err := cs.st.(driver.StmtQueryContext).QueryContext(ctx, args)
	if err != nil {
		c.release(cs)
		return nil, err
	}
	return &releasingRows{Rows: rows, release: func() { c.release(cs) }}, nil
}

func (c *cachingConn) PrepareContext(ctx context.Context, q string) (driver.Stmt, error) {
	return c.Conn.(driver.ConnPrepareContext).PrepareContext(ctx, q)
}

func (c *cachingConn) BeginTx(ctx context.Context, opts driver.TxOptions) (driver.Tx, error) {
	return c.Conn.(driver.ConnBeginTx).BeginTx(ctx, opts)
}

func (c *cachingConn) Ping(ctx context.Context) error {
	if p, ok := c.Conn.(driver.Pinger); ok {
		return p.Ping(ctx)
	}
	return nil
}

func (c *cachingConn) ResetSession(ctx context.Context) error {
	if r, ok := c.Conn.(driver.SessionResetter); ok {
		return r.ResetSession(ctx)
	}
	return nil
}

func (c *cachingConn) IsValid() bool {
	if v, ok := c.Conn.(driver.Validator); ok {
		return v.IsValid()
	}
	return true
}

func (c *cachingConn) Close() error {
	c.mu.Lock()
	for _, cs := range c.stmts {
		_ = cs.st.Close()
	}
	c.stmts = nil
	c.mu.Unlock()
	return c.Conn.Close()
}

// releasingRows gives its statement back when closed.
type releasingRows struct {
	driver.Rows
	once    sync.Once
	release func()
}

func (r *releasingRows) Close() error {
	err := r.Rows.Close()
	r.once.Do(r.release)
	return err
}
