package git

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"os/exec"
	"strconv"
	"strings"
	"sync"
)

// reader is one long-running `git cat-file --batch` serving a Repo's blob reads (ShareReader):
// one git process for a build's reads instead of one per read. Reads take turns (mu).
type reader struct {
	repo   *Repo
	mu     sync.Mutex
	cmd    *exec.Cmd
	in     io.WriteCloser
	out    *bufio.Reader
	stderr bytes.Buffer
	err    error // the process broke: later reads fail with it
}

// ShareReader makes the blob reads of r (Blobs, ReadBlob) go through one long-running
// `git cat-file --batch`, started by the first read that needs git (none when the object cache
// answers all of them), until Close.
func (r *Repo) ShareReader() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.reader != nil {
		return
	}
	r.reader = &reader{repo: r}
}

// Close stops the shared reader of r, if any.
func (r *Repo) Close() error {
	r.mu.Lock()
	rd := r.reader
	r.reader = nil
	r.mu.Unlock()
	if rd == nil {
		return nil
	}
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.cmd == nil {
		rd.err = errors.New("git: the repository's reader is closed")
		return nil
	}
	rd.in.Close()
	err := rd.cmd.Wait()
	rd.cmd, rd.err = nil, errors.New("git: the repository's reader is closed")
	return err
}

func (r *Repo) sharedReader() *reader {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.reader
}

func (rd *reader) start(r *Repo) {
	c := r.cmd(context.Background(), nil, "cat-file", "--batch")
	c.Stderr = &rd.stderr
	in, err := c.StdinPipe()
	if err == nil {
		var out io.ReadCloser
		if out, err = c.StdoutPipe(); err == nil {
			if err = c.Start(); err == nil {
				rd.cmd, rd.in, rd.out = c, in, bufio.NewReaderSize(out, 64<<10)
				return
			}
		}
	}
	rd.err = fmt.Errorf("git cat-file --batch: %w", err)
}

// read reads the objects hashes in order, calling fn with each (content up to limit bytes;
// larger ones fail, their content is skipped, never kept). A broken stream stops the process:
// later reads fail.
func (rd *reader) read(ctx context.Context, hashes []string, limit int64, fn func(hash string, data []byte) error) error {
	rd.mu.Lock()
	defer rd.mu.Unlock()
	if rd.cmd == nil && rd.err == nil {
		rd.start(rd.repo)
	}
	if rd.err != nil {
		return rd.err
	}
	if err := ctx.Err(); err != nil {
		return err
	}
	// Written while the answers are read: git stops reading its input while its output is full.
	wrote := make(chan error, 1)
	go func() {
		w := bufio.NewWriter(rd.in)
		for _, h := range hashes {
			w.WriteString(h + "\n")
		}
		wrote <- w.Flush()
	}()
	var ferr error
	for _, h := range hashes {
		hdr, err := rd.out.ReadString('\n')
		if err != nil {
			rd.broken(fmt.Errorf("git cat-file %s: the process ended: %w", h, err))
			return rd.err
		}
		f := strings.Fields(hdr)
		if len(f) != 3 {
			// "<hash> missing": nothing follows; the stream stays in step.
			if ferr == nil {
				ferr = fmt.Errorf("git cat-file %s: %s", h, strings.TrimSpace(hdr))
			}
			continue
		}
		n, err := strconv.ParseInt(f[2], 10, 64)
		if err != nil {
			rd.broken(fmt.Errorf("git cat-file %s: bad header %q", h, hdr))
			return rd.err
		}
		if ferr != nil || n > limit {
			if _, err := rd.out.Discard(int(n) + 1); err != nil {
				rd.broken(fmt.Errorf("git cat-file %s: %w", h, err))
				return rd.err
			}
			if ferr == nil {
				ferr = fmt.Errorf("blob %s is larger than %d bytes", h, limit)
			}
			continue
		}
		buf := make([]byte, n+1)
		if _, err := io.ReadFull(rd.out, buf); err != nil {
			rd.broken(fmt.Errorf("git cat-file %s: %w", h, err))
			return rd.err
		}
		if err := fn(h, buf[:n]); err != nil {
			ferr = err
		}
	}
	if err := <-wrote; err != nil {
		rd.broken(fmt.Errorf("git cat-file: %w", err))
		return rd.err
	}
	return ferr
}

// broken stops the process after a read that left the stream out of step; later reads fail
// with err and what git wrote on stderr (read once Wait ended its copying into stderr).
func (rd *reader) broken(err error) {
	rd.in.Close()
	rd.cmd.Process.Kill()
	rd.cmd.Wait()
	rd.cmd = nil // waited: Close has nothing left to stop
	if msg := strings.TrimSpace(rd.stderr.String()); msg != "" {
		err = fmt.Errorf("%w: %s", err, msg)
	}
	rd.err = err
}
