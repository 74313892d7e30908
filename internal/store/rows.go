package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/lowrank/lowrank"
)

// queryAll runs q on db and scans every row with scan; what names the
// operation in errors. Both SQL stores share it, since their rows have the
// same columns.
func queryAll[T any](ctx context.Context, db *sql.DB, what string, scan func(interface{ Scan(...any) error }) (*T, error), q string, args ...any) ([]*T, error) {
	rows, err := db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	defer rows.Close()
	var out []*T
	for rows.Next() {
		v, err := scan(rows)
		if err != nil {
			return nil, fmt.Errorf("store: %s: %w", what, err)
		}
		out = append(out, v)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("store: %s: %w", what, err)
	}
	return out, nil
}

// queryOne runs q on db and scans its one row with scan. No row is an
// ENOTFOUND error naming the record ("<what> <id> not found", id being the
// first argument), as every lookup by id answers.
func queryOne[T any](ctx context.Context, db *sql.DB, what string, scan func(interface{ Scan(...any) error }) (*T, error), q string, args ...any) (*T, error) {
	v, err := scan(db.QueryRowContext(ctx, q, args...))
	if errors.Is(err, sql.ErrNoRows) {
		return nil, lowrank.Errorf(lowrank.ENOTFOUND, "", "%s %s not found", what, args[0])
	}
	if err != nil {
		return nil, fmt.Errorf("store: get %s: %w", what, err)
	}
	return v, nil
}

// transition sets cols to vals on the row id of table when its status is
// one of from, and reports whether it did: one conditional UPDATE, so of
// two actors racing for a row (a worker, a cancel; two replicas) exactly
// one sees a status in from — SQLite has one writer, and under Postgres'
// READ COMMITTED the second waits for the first's row lock and re-checks
// the status on the committed row. The statement is written with '?' and
// passed through rewrite (Postgres numbers its placeholders).
func transition(ctx context.Context, db *sql.DB, rewrite func(string) string, table, id string, from []JobStatus, cols []string, vals []any) (bool, error) {
	if len(from) == 0 {
		panic("store: transition of " + table + " without from statuses")
	}
	set := make([]string, len(cols))
	for i, c := range cols {
		set[i] = c + " = ?"
	}
	args := append(slices.Clip(vals), id)
	in := make([]string, len(from))
	for i, st := range from {
		in[i] = "?"
		args = append(args, string(st))
	}
	res, err := db.ExecContext(ctx, rewrite(`UPDATE `+table+` SET `+strings.Join(set, ", ")+
		` WHERE id = ? AND status IN (`+strings.Join(in, ", ")+`)`), args...)
	if err != nil {
		return false, fmt.Errorf("store: transition %s: %w", table, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("store: transition %s: %w", table, err)
	}
	return n == 1, nil
}

// jobUpdateColumns lists the columns u sets, status first, with their values
// as both SQL stores store them (times as Unix nanoseconds, JSON as text).
func jobUpdateColumns(u JobUpdate) (cols []string, vals []any, err error) {
	cols, vals = []string{"status"}, []any{string(u.Status)}
	add := func(col string, v any) {
		cols = append(cols, col)
		vals = append(vals, v)
	}
	if u.StartedAt != nil {
		add("started_at", nullTime(u.StartedAt))
	}
	if u.FinishedAt != nil {
		add("finished_at", nullTime(u.FinishedAt))
	}
	if u.Timings != nil {
		v, err := jsonText(u.Timings)
		if err != nil {
			return nil, nil, err
		}
		add("timings", v)
	}
	if u.Result != nil {
		v, _ := jsonText(u.Result)
		add("result", v)
	}
	if u.Error != nil {
		v, err := jsonText(u.Error)
		if err != nil {
			return nil, nil, err
		}
		add("error", v)
	}
	if u.BundleKey != "" {
		add("bundle_key", u.BundleKey)
	}
	if u.Progress != nil {
		v, err := jsonText(*u.Progress)
		if err != nil {
			return nil, nil, err
		}
		add("progress", v)
	}
	return cols, vals, nil
}

// jobJSONColumns encodes the JSON columns of a new job as both SQL stores
// store them (text, params "{}" when absent).
func jobJSONColumns(j *Job) (params, timings, progress any, err error) {
	if params, err = jsonText(j.Params); err != nil {
		return nil, nil, nil, err
	}
	if params == nil {
		params = "{}"
	}
	if timings, err = jsonText(j.Timings); err != nil {
		return nil, nil, nil, err
	}
	if progress, err = jsonText(j.Progress); err != nil {
		return nil, nil, nil, err
	}
	return params, timings, progress, nil
}

// Statements of the tensor-in-use rule, in the SQLite placeholder style;
// the Postgres store rewrites them with pgPlaceholders. Both stores run them inside
// a transaction, see DeleteTensor and CreateJob.
const (
	sqlActiveReader = `SELECT id FROM lowrank_job WHERE tensor_id = ? AND status IN ('queued', 'running') LIMIT 1`
	sqlTensorExists = `SELECT 1 FROM lowrank_tensor WHERE id = ? AND owner = ?`
)

// deleteTensorTx deletes a tensor unless a queued or running job reads it
// (ECONFLICT: the job would fail for want of its input). lock is appended to
// the existence check (Postgres' FOR UPDATE, so a CreateJob holding the row
// FOR SHARE commits first and its job is seen); rewrite adapts placeholders.
func deleteTensorTx(ctx context.Context, db *sql.DB, owner, id, lock string, rewrite func(string) string) (err error) {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("store: delete tensor: %w", err)
	}
	defer func() {
		if err != nil {
			_ = tx.Rollback()
		}
	}()
	var one int
	err = tx.QueryRowContext(ctx, rewrite(sqlTensorExists+lock), id, owner).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return lowrank.Errorf(lowrank.ENOTFOUND, "", "tensor %s not found", id)
	}
	if err != nil {
		return fmt.Errorf("store: delete tensor: %w", err)
	}
	var jobID string
	err = tx.QueryRowContext(ctx, rewrite(sqlActiveReader), id).Scan(&jobID)
	switch {
	case err == nil:
		return lowrank.Errorf(lowrank.ECONFLICT, "", "tensor %s is the input of job %s, which is queued or running; cancel the job or wait for it to finish", id, jobID)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: delete tensor: %w", err)
	}
	var compressionID string
	err = tx.QueryRowContext(ctx, rewrite(sqlActiveCompression), id).Scan(&compressionID)
	switch {
	case err == nil:
		return lowrank.Errorf(lowrank.ECONFLICT, "", "tensor %s is the input of compression %s, which is queued or running; cancel the compression or wait for it to finish", id, compressionID)
	case !errors.Is(err, sql.ErrNoRows):
		return fmt.Errorf("store: delete tensor: %w", err)
	}
	if _, err = tx.ExecContext(ctx, rewrite(`DELETE FROM lowrank_tensor WHERE id = ?`), id); err != nil {
		return fmt.Errorf("store: delete tensor: %w", err)
	}
	if err = tx.Commit(); err != nil {
		return fmt.Errorf("store: delete tensor: %w", err)
	}
	return nil
}

// checkInputTx is CreateJob's half of the tensor-in-use rule: the job's
// uploaded tensor must still exist, checked in the job's transaction (with
// lock, Postgres' FOR SHARE) so a concurrent DeleteTensor either sees the
// job or removes the tensor first and the job is refused.
func checkInputTx(ctx context.Context, tx *sql.Tx, j *Job, lock string, rewrite func(string) string) error {
	if j.TensorID == "" {
		return nil
	}
	var one int
	err := tx.QueryRowContext(ctx, rewrite(sqlTensorExists+lock), j.TensorID, j.Owner).Scan(&one)
	if errors.Is(err, sql.ErrNoRows) {
		return lowrank.Errorf(lowrank.ENOTFOUND, "tensor_id", "tensor %s not found", j.TensorID)
	}
	if err != nil {
		return fmt.Errorf("store: create job: %w", err)
	}
	return nil
}

// listJobs is ListJobs of both SQL stores; rewrite turns its ?
// placeholders into the store's.
func listJobs(ctx context.Context, db *sql.DB, rewrite func(string) string, f JobFilter, p Page) ([]*Job, string, error) {
	q := `SELECT ` + jobCols + ` FROM lowrank_job WHERE owner = ?`
	args := []any{f.Owner}
	if f.Status != "" {
		q += ` AND status = ?`
		args = append(args, string(f.Status))
	}
	if f.Method != "" {
		q += ` AND method = ?`
		args = append(args, f.Method)
	}
	return listPage(ctx, db, rewrite, "list jobs", scanJob, func(j *Job) string { return j.ID }, p, q, args...)
}

// listPage runs q (a SELECT whose WHERE clause the cursor condition can
// extend with AND) for one page of at most pageLimit(p) rows, newest
// first — ids are UUIDv7, so that is creation order — and returns the
// cursor of the next page, "" after the last. q has ? placeholders, which
// rewrite turns into the store's.
func listPage[T any](ctx context.Context, db *sql.DB, rewrite func(string) string, what string,
	scan func(interface{ Scan(...any) error }) (*T, error), id func(*T) string, p Page, q string, args ...any) ([]*T, string, error) {
	limit := pageLimit(p)
	if p.Cursor != "" {
		q += ` AND id < ?`
		args = append(args, p.Cursor)
	}
	q += ` ORDER BY id DESC LIMIT ?`
	args = append(args, limit+1)
	out, err := queryAll(ctx, db, what, scan, rewrite(q), args...)
	if err != nil {
		return nil, "", err
	}
	if len(out) <= limit {
		return out, "", nil
	}
	out = out[:limit]
	return out, id(out[limit-1]), nil
}
