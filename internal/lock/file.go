package lock

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"syscall"
	"time"
)

// File is a Locker backed by flock(2) on files in Dir: exclusive between processes of one host.
// A lock held by a killed process is released by the kernel at once.
type File struct {
	// Dir holds one file per lock name; created if missing.
	Dir string
	// Owner is recorded in the lock file for others' log lines; default DefaultOwner().
	Owner string
	// Poll is how often a waiter retries; default 50ms.
	Poll time.Duration
	// Log receives wait messages; nil discards them.
	Log *slog.Logger
}

// DefaultFileDir is where :local locks live: $STRATA_HOME/locks, else ~/.strata/locks.
func DefaultFileDir() string {
	if h := os.Getenv("STRATA_HOME"); h != "" {
		return filepath.Join(h, "locks")
	}
	if h, err := os.UserHomeDir(); err == nil {
		return filepath.Join(h, ".strata", "locks")
	}
	return filepath.Join(os.TempDir(), "strata-locks")
}

// Lock implements Locker.
func (f *File) Lock(ctx context.Context, name string) (Lease, error) {
	dir := f.Dir
	if dir == "" {
		dir = DefaultFileDir()
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("lock %q: %w", name, err)
	}
	path := filepath.Join(dir, Key(name)+".lock")
	fh, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, fmt.Errorf("lock %q: %w", name, err)
	}
	poll := f.Poll
	if poll <= 0 {
		poll = 50 * time.Millisecond
	}
	logged := "" // the holder last logged: a new holder (or one only now readable) is logged again
	for {
		err := syscall.Flock(int(fh.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			break
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) {
			fh.Close()
			return nil, fmt.Errorf("lock %q (%s): %w", name, path, err)
		}
		if f.Log != nil {
			if h := readHolder(path).String(); h != logged {
				f.Log.Info("waiting for lock", "lock", name, "holder", h)
				logged = h
			}
		}
		select {
		case <-ctx.Done():
			fh.Close()
			return nil, fmt.Errorf("lock %q: %w", name, ctx.Err())
		case <-time.After(poll):
		}
	}
	owner := f.Owner
	if owner == "" {
		owner = DefaultOwner()
	}
	b, _ := json.Marshal(Holder{Owner: owner, Since: time.Now()})
	if err := fh.Truncate(0); err == nil {
		_, _ = fh.WriteAt(b, 0)
	}
	return &fileLease{f: fh, lost: make(chan struct{})}, nil
}

func readHolder(path string) Holder {
	var h Holder
	if b, err := os.ReadFile(path); err == nil {
		_ = json.Unmarshal(b, &h)
	}
	return h
}

type fileLease struct {
	once sync.Once
	f    *os.File
	lost chan struct{} // never closed: a flock cannot be lost while the process lives
}

func (l *fileLease) Lost() <-chan struct{} { return l.lost }
func (l *fileLease) Err() error            { return nil }

func (l *fileLease) Unlock(context.Context) error {
	var err error
	l.once.Do(func() {
		_ = l.f.Truncate(0)
		err = syscall.Flock(int(l.f.Fd()), syscall.LOCK_UN)
		if cerr := l.f.Close(); err == nil {
			err = cerr
		}
	})
	return err
}
