package lock

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"strconv"
	"time"
)

// Locker hands out exclusive locks by name. Names are free-form, e.g. "<project>/<digest>".
type Locker interface {
	// Lock blocks until the lock is held or ctx ends. While waiting, implementations log who holds
	// the lock and since when.
	Lock(ctx context.Context, name string) (Lease, error)
}

// Lease is a held lock.
type Lease interface {
	// Lost is closed when the lock can no longer be trusted (expired, taken over, backend
	// unreachable past the TTL). A holder must check it right before an irreversible step and
	// abandon that step if it is closed.
	Lost() <-chan struct{}
	// Err says why the lease was lost, or nil while it is held.
	Err() error
	// Unlock releases the lock. Unlocking a lost lease is not an error.
	Unlock(ctx context.Context) error
}

// Holder describes who holds a lock, for log lines and errors.
type Holder struct {
	Owner string    `json:"owner"`
	Since time.Time `json:"since"`
}

func (h Holder) String() string {
	if h.Owner == "" {
		return "unknown holder"
	}
	return fmt.Sprintf("%s (since %s)", h.Owner, h.Since.UTC().Format(time.RFC3339))
}

// DefaultOwner identifies this process: host, pid.
func DefaultOwner() string {
	host, _ := os.Hostname()
	if host == "" {
		host = "unknown-host"
	}
	return host + "/pid-" + strconv.Itoa(os.Getpid())
}

// Key turns a lock name into a short stable identifier fit for file and object names.
func Key(name string) string {
	sum := sha256.Sum256([]byte(name))
	return hex.EncodeToString(sum[:])[:40]
}

// Margin is how long before the end of its TTL a holder that could not renew declares its lease
// lost: others may take the lock over only at the TTL, so a step taken right after a Lost check
// has this long to complete. It is a fifth of the TTL, at most one renew period.
func Margin(ttl, renewEvery time.Duration) time.Duration {
	return min(ttl/5, renewEvery)
}

// IsLost reports whether the lease has been lost, without blocking.
func IsLost(l Lease) bool {
	select {
	case <-l.Lost():
		return true
	default:
		return false
	}
}
