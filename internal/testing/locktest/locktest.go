package locktest

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"strata.dev/strata/internal/lock"
)

// Backend is one lock backend under test, set up afresh for every check of Run.
type Backend struct {
	// Open returns a new Locker on this backend whose locks name owner and whose wait messages
	// go to log (nil: discarded). All Lockers of one Backend contend for the same locks.
	Open func(owner string, log *slog.Logger) (lock.Locker, error)
	// TTL is how long the backend keeps a lock whose holder stopped renewing; 0 for a backend
	// whose locks end with their holder's process (files).
	TTL time.Duration
	// DeadHolderWithin bounds how long a SIGKILLed holder keeps others waiting.
	DeadHolderWithin time.Duration
	// Spec is handed to the Main of a child test process that holds a lock until killed; Main's
	// open turns it back into a Locker.
	Spec string
	// Break makes the backend drop or give away held lock name behind its holder's back; the
	// holder's lease must then be lost with an error containing BreakSays. nil: a lease of this
	// backend cannot be lost while its process lives, and Run checks that it never is.
	Break     func(t *testing.T, name string)
	BreakSays string
}

// Run runs the conformance checks as subtests, each on a Backend from setup.
func Run(t *testing.T, setup func(t *testing.T) Backend) {
	for _, c := range []struct {
		name string
		run  func(*testing.T, Backend)
	}{
		{"exclusive", testExclusive},
		{"release", testRelease},
		{"wait times out", testTimeout},
		{"wait cancelled", testCancel},
		{"renew keeps the lock", testRenew},
		{"lease loss", testLoss},
		{"dead holder", testDeadHolder},
		{"waiting logs the holder", testWaitLog},
	} {
		t.Run(c.name, func(t *testing.T) { c.run(t, setup(t)) })
	}
}

// open returns a Locker of b for owner, failing the test on error.
func open(t *testing.T, b Backend, owner string) lock.Locker {
	t.Helper()
	l, err := b.Open(owner, nil)
	if err != nil {
		t.Fatal(err)
	}
	return l
}

// Name returns a lock name unique to the test.
func Name(t testing.TB) string {
	return strings.NewReplacer("/", "-", " ", "-").Replace(t.Name()) + fmt.Sprintf("-%d/digest", time.Now().UnixNano())
}

// lockWithin takes lock name or fails the test after d.
func lockWithin(t *testing.T, l lock.Locker, name string, d time.Duration) lock.Lease {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	lease, err := l.Lock(ctx, name)
	if err != nil {
		t.Fatalf("Lock(%q): %v", name, err)
	}
	return lease
}

// Exclusion has each Locker take lock name rounds times, concurrently, holding it for hold.
// Each critical section reads a shared counter, sleeps and writes it back incremented: a double
// grant shows as two holders inside at once or as a lost update. It fails the test on either,
// on any error and on a lease lost while held, and returns how many critical sections ran.
func Exclusion(t testing.TB, lockers []lock.Locker, name string, rounds int, hold time.Duration) int64 {
	t.Helper()
	var inside, maxInside, total, counter atomic.Int64
	var wg sync.WaitGroup
	errs := make(chan error, len(lockers)*rounds*2)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	for _, k := range lockers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for r := 0; r < rounds; r++ {
				l, err := k.Lock(ctx, name)
				if err != nil {
					errs <- err
					return
				}
				n := inside.Add(1)
				for m := maxInside.Load(); n > m && !maxInside.CompareAndSwap(m, n); m = maxInside.Load() {
				}
				v := counter.Load()
				time.Sleep(hold)
				counter.Store(v + 1)
				if lock.IsLost(l) {
					errs <- fmt.Errorf("lease lost while held: %v", l.Err())
				}
				total.Add(1)
				inside.Add(-1)
				if err := l.Unlock(ctx); err != nil {
					errs <- err
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	if m := maxInside.Load(); m > 1 {
		t.Fatalf("double grant: %d holders inside the critical section at once, want 1", m)
	}
	if c, n := counter.Load(), total.Load(); c != n {
		t.Fatalf("double grant: the shared counter reads %d after %d critical sections (lost updates)", c, n)
	}
	return total.Load()
}

func testExclusive(t *testing.T, b Backend) {
	var lockers []lock.Locker
	for i := 0; i < 8; i++ {
		lockers = append(lockers, open(t, b, fmt.Sprintf("worker-%d", i)))
	}
	if n := Exclusion(t, lockers, Name(t), 5, 5*time.Millisecond); n != 40 {
		t.Fatalf("ran %d critical sections, want 40", n)
	}
}

// testRelease: a waiter gets a lock once it is released, not before; other names never wait;
// a second Unlock is harmless.
func testRelease(t *testing.T, b Backend) {
	name := Name(t)
	a, w := open(t, b, "holder"), open(t, b, "waiter")
	held := lockWithin(t, a, name, 30*time.Second)
	got := make(chan lock.Lease, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		l, err := w.Lock(ctx, name)
		if err != nil {
			t.Error(err)
		}
		got <- l
	}()
	other := lockWithin(t, w, name+"-other", 10*time.Second)
	if err := other.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	select {
	case <-got:
		t.Fatal("the waiter got the lock while it was held")
	case <-time.After(500 * time.Millisecond):
	}
	if err := held.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	if err := held.Unlock(context.Background()); err != nil {
		t.Fatalf("second Unlock: %v", err)
	}
	select {
	case l := <-got:
		if l == nil {
			t.FailNow()
		}
		if err := l.Unlock(context.Background()); err != nil {
			t.Fatal(err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the waiter did not get the lock 30 s after its release")
	}
}

// waitEnds has a second Locker wait for a held lock under ctx, and checks it gives up with
// ctx's error within a few seconds of end, leaving the holder's lease alone.
func waitEnds(t *testing.T, b Backend, ctx context.Context, end func(), want error) {
	t.Helper()
	name := Name(t)
	held := lockWithin(t, open(t, b, "holder"), name, 30*time.Second)
	defer held.Unlock(context.Background())
	errc := make(chan error, 1)
	go func() {
		l, err := open(t, b, "waiter").Lock(ctx, name)
		if err == nil {
			_ = l.Unlock(context.Background())
		}
		errc <- err
	}()
	end()
	ended := time.Now()
	select {
	case err := <-errc:
		if !errors.Is(err, want) {
			t.Fatalf("waiter: %v, want %v", err, want)
		}
		if err != nil && !strings.Contains(err.Error(), name) {
			t.Errorf("waiter error %q does not name the lock %q", err, name)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("the waiter still waits 10 s after its context ended (%s)", ended.Format(time.RFC3339Nano))
	}
	if lock.IsLost(held) {
		t.Fatalf("holder lost its lease: %v", held.Err())
	}
}

func testTimeout(t *testing.T, b Backend) {
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	waitEnds(t, b, ctx, func() { <-ctx.Done() }, context.DeadlineExceeded)
}

func testCancel(t *testing.T, b Backend) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	waitEnds(t, b, ctx, func() { time.Sleep(500 * time.Millisecond); cancel() }, context.Canceled)
}

// testRenew holds a lock for more than two TTLs: it is never lost, and a waiter all that time
// does not get it.
func testRenew(t *testing.T, b Backend) {
	name := Name(t)
	held := lockWithin(t, open(t, b, "holder"), name, 30*time.Second)
	span := max(5*b.TTL/2, time.Second)
	ctx, cancel := context.WithTimeout(context.Background(), span)
	defer cancel()
	if l, err := open(t, b, "waiter").Lock(ctx, name); err == nil {
		_ = l.Unlock(context.Background())
		t.Fatalf("a waiter took the lock while its holder kept it (TTL %s)", b.TTL)
	} else if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("waiter: %v, want deadline exceeded", err)
	}
	if lock.IsLost(held) || held.Err() != nil {
		t.Fatalf("holder lost its lease within %s (TTL %s): %v", span, b.TTL, held.Err())
	}
	if err := held.Unlock(context.Background()); err != nil {
		t.Fatal(err)
	}
	lockWithin(t, open(t, b, "next"), name, 30*time.Second).Unlock(context.Background())
}

// WaitLost waits up to within for lease l to be lost after event (for the failure message),
// checks that its Err contains every one of says and that unlocking it is no error, and
// returns when it was seen lost.
func WaitLost(t testing.TB, l lock.Lease, within time.Duration, event string, says ...string) time.Time {
	t.Helper()
	select {
	case <-l.Lost():
	case <-time.After(within):
		t.Fatalf("Lost() not closed %s after %s", within, event)
	}
	lostAt := time.Now()
	err := l.Err()
	for _, s := range says {
		if err == nil || !strings.Contains(err.Error(), s) {
			t.Fatalf("Err() = %v, want it to say %q", err, s)
		}
	}
	if err := l.Unlock(context.Background()); err != nil {
		t.Fatalf("Unlock of a lost lease: %v", err)
	}
	return lostAt
}

// testLoss breaks a held lock on the backend: the holder's lease is lost with a reason, its
// Unlock is no error, and the lock can be taken again.
func testLoss(t *testing.T, b Backend) {
	name := Name(t)
	held := lockWithin(t, open(t, b, "holder"), name, 30*time.Second)
	if b.Break == nil {
		time.Sleep(time.Second)
		if lock.IsLost(held) || held.Err() != nil {
			t.Fatalf("a lease of a backend without loss was lost: %v", held.Err())
		}
		if err := held.Unlock(context.Background()); err != nil {
			t.Fatal(err)
		}
		return
	}
	b.Break(t, name)
	WaitLost(t, held, max(2*b.TTL, 5*time.Second), "the backend dropped the lock", b.BreakSays, name)
	lockWithin(t, open(t, b, "next"), name, 30*time.Second).Unlock(context.Background())
}

const holderEnv = "STRATA_LOCKTEST_HOLDER"

// Main runs a test binary's tests, or, in the child process the dead-holder check starts, takes
// one lock with the Locker open builds from Backend.Spec, prints "locked" and holds it until
// killed. Call it from TestMain.
func Main(m *testing.M, open func(spec, owner string) (lock.Locker, error)) {
	v := os.Getenv(holderEnv)
	if v == "" {
		os.Exit(m.Run())
	}
	name, spec, _ := strings.Cut(v, "\n")
	l, err := open(spec, "doomed-holder")
	if err == nil {
		_, err = l.Lock(context.Background(), name)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, err)
		os.Exit(2)
	}
	fmt.Println("locked")
	select {}
}

// testDeadHolder SIGKILLs a child process holding a lock after it renewed a few times: another
// Locker gets the lock within DeadHolderWithin.
func testDeadHolder(t *testing.T, b Backend) {
	name := Name(t)
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), holderEnv+"="+name+"\n"+b.Spec)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	if line, err := bufio.NewReader(out).ReadString('\n'); err != nil || strings.TrimSpace(line) != "locked" {
		t.Fatalf("holder process: %q, %v (is locktest.Main in TestMain?)", line, err)
	}
	time.Sleep(max(b.TTL/2, 500*time.Millisecond)) // a renew or two
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	killed := time.Now()
	l := lockWithin(t, open(t, b, "survivor"), name, time.Minute)
	defer l.Unlock(context.Background())
	if blocked := time.Since(killed); blocked > b.DeadHolderWithin {
		t.Fatalf("a SIGKILLed holder blocked others for %s, want at most %s (TTL %s)", blocked, b.DeadHolderWithin, b.TTL)
	} else {
		t.Logf("SIGKILLed holder blocked others for %s (TTL %s)", blocked.Round(time.Millisecond), b.TTL)
	}
}
