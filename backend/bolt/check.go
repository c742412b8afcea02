package bolt

import (
	"context"
	"errors"
	"fmt"
	"os"
	"runtime/debug"
	"time"

	"github.com/stickypub/stickypub/backend"
	bbolt "go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"
)

// maxCheckProblems bounds the problems a CheckReport lists.
const maxCheckProblems = 20

// CheckReport is what Check found in a bolt file.
type CheckReport struct {
	// Path is the file checked; Size its length in bytes.
	Path string
	Size int64
	// Damage is why the file cannot be opened as a store (truncated, bad
	// meta pages), or nil.
	Damage error
	// Structure lists what bbolt's consistency check found (pages, free
	// list, ordering), at most maxCheckProblems; StructureChecked is false
	// when the check could not run (a truncated file).
	Structure        []string
	StructureChecked bool
	// Records is how many records of the data bucket were read; BadRecords
	// lists records that do not decode or that visit rejected ("key: why"),
	// at most maxCheckProblems, and BadCount counts them all.
	Records    int
	BadRecords []string
	BadCount   int
	// Incomplete says why the scan of the records stopped early (pages
	// missing from a truncated file, a damaged page), or is empty when
	// every record was reached.
	Incomplete string
}

// Healthy reports whether nothing is wrong with the file.
func (r *CheckReport) Healthy() bool {
	return r.Damage == nil && len(r.Structure) == 0 && r.BadCount == 0 && r.Incomplete == ""
}

// Check examines the stickypub bolt file at path without changing it:
// whether it is truncated or its meta pages are damaged, bbolt's own
// consistency check (skipped when pages are missing, where it would crash),
// and every record of the data bucket, which it decodes and passes to visit
// (when not nil) to check its value; a visit error marks the record bad.
// value is valid only during the call. Reading a page that is missing from
// the file stops the scan (recorded in Incomplete) instead of crashing the
// process. The file is opened read-only, so Check waits at most timeout for
// a process that holds it open for writing, then fails with an error
// matching backend.ErrUnavailable. Check fails only when it cannot read the
// file at all (missing, locked, not a bbolt file).
func Check(ctx context.Context, path string, timeout time.Duration, visit func(key string, value []byte) error) (*CheckReport, error) {
	fi, err := os.Stat(path)
	if err != nil {
		var pe *os.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		return nil, fmt.Errorf("bolt: check %s: %w", path, err)
	}
	r := &CheckReport{Path: path, Size: fi.Size()}
	r.Damage = preflight(path)
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: timeout})
	if err != nil {
		switch {
		case errors.Is(err, berrors.ErrTimeout):
			return nil, fmt.Errorf("bolt: check %s: the file is held open by a process that writes to it (stop it first): %w", path, backend.ErrUnavailable)
		case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum), errors.Is(err, berrors.ErrVersionMismatch):
			if r.Damage == nil {
				r.Damage = corruptFile("%v", err)
			}
			r.Incomplete = "the file cannot be opened: no record is readable"
			return r, nil
		}
		return nil, fmt.Errorf("bolt: check %s: %w", path, err)
	}
	defer db.Close()
	if r.Damage == nil {
		r.StructureChecked = true
		_ = db.View(func(tx *bbolt.Tx) error {
			for err := range tx.Check() {
				if len(r.Structure) < maxCheckProblems {
					r.Structure = append(r.Structure, err.Error())
				}
			}
			return nil
		})
	}
	r.scan(ctx, db, visit)
	return r, nil
}

// scan reads every record, turning a fault on a missing page into
// Incomplete.
func (r *CheckReport) scan(ctx context.Context, db *bbolt.DB, visit func(string, []byte) error) {
	done := make(chan struct{})
	go func() { // SetPanicOnFault is per goroutine: keep it to this one
		defer close(done)
		debug.SetPanicOnFault(true)
		defer func() {
			if p := recover(); p != nil {
				r.Incomplete = fmt.Sprintf("the scan stopped after %d records: a page is missing (truncated file) or damaged (%v)", r.Records, p)
			}
		}()
		err := db.View(func(tx *bbolt.Tx) error {
			meta, data := tx.Bucket([]byte(metaBucketName)), tx.Bucket([]byte(dataBucketName))
			if meta == nil || data == nil || string(meta.Get([]byte(formatKey))) != formatValue {
				return fmt.Errorf("%w: not a stickypub bolt file (no format marker or data bucket)", backend.ErrCorrupt)
			}
			c := data.Cursor()
			for k, _ := c.First(); k != nil; k, _ = c.Next() {
				if err := ctx.Err(); err != nil {
					return err
				}
				r.Records++
				e, err := lookup(data, k)
				if err == nil && visit != nil {
					if verr := visit(string(k), e.Value); verr != nil {
						err = fmt.Errorf("%s: %w", quoteKey(string(k)), verr)
					}
				}
				if err != nil {
					r.BadCount++
					if len(r.BadRecords) < maxCheckProblems {
						r.BadRecords = append(r.BadRecords, err.Error())
					}
				}
			}
			return nil
		})
		if err != nil {
			r.Incomplete = err.Error()
		}
	}()
	<-done
}
