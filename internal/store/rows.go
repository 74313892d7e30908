package store

import (
	"context"
	"database/sql"
	"fmt"
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
