package coordinator

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"

	"github.com/trainctl/trainctl/coordinator/structs"
	"github.com/trainctl/trainctl/internal/durable"
)

// Uploads. A request body that is a file (a dataset version) is bounded by
// a limit that is checked before the body is read (a declared
// Content-Length over it is refused at once) and while it is read (a
// chunked body is cut off as soon as it passes the limit), on whichever
// server the request reaches: a follower checks before forwarding, so the
// leader sees no more than the limit either. The body is streamed to a
// locked temporary file under <DataDir>/tmp/uploads (durable.TempDir) with
// a fixed-size buffer, never held in memory; the file is removed on every
// path out of the handler, and whatever a crashed server left there is
// removed when it starts.

// uploadCopyBuf is the buffer a body is copied to disk through.
const uploadCopyBuf = 64 << 10

// uploadsDir is the directory of upload temporary files in a data
// directory.
func uploadsDir(dataDir string) string { return filepath.Join(dataDir, "tmp", "uploads") }

// openUploads opens the upload temporary directory of dataDir, removing the
// files crashed servers left behind, including those of versions before
// the directory existed (.dataset-*.arrow directly in dataDir).
func openUploads(dataDir string, log *slog.Logger) (*durable.TempDir, error) {
	td, removed, err := durable.OpenTempDir(uploadsDir(dataDir))
	if err != nil {
		return nil, fmt.Errorf("upload directory: %w", err)
	}
	legacy, _ := filepath.Glob(filepath.Join(dataDir, ".dataset-*.arrow"))
	for _, p := range legacy {
		if os.Remove(p) == nil {
			removed = append(removed, p)
		}
	}
	for _, p := range removed {
		log.Warn("removed an abandoned upload", "path", p)
	}
	return td, nil
}

// tooLargeError is the error of a body over limit bytes.
func tooLargeError(what string, limit int64, detail string) error {
	return fmt.Errorf("%s: %w: %s, the limit is %d bytes", what, structs.ErrTooLarge, detail, limit)
}

// limitBody bounds r's body to limit bytes for the handler and, through a
// forward, for the leader. A declared length over the limit is answered
// with 413 at once, before a byte is read, and limitBody returns false.
func limitBody(w http.ResponseWriter, r *http.Request, what string, limit int64) bool {
	if r.ContentLength > limit {
		writeError(w, tooLargeError(what, limit, fmt.Sprintf("the body declares %d bytes", r.ContentLength)))
		return false
	}
	r.Body = http.MaxBytesReader(w, r.Body, limit)
	return true
}

// writeBodyTooLarge answers 413 and returns true when err says that a body
// limited by limitBody passed its limit (as a forward's error does).
func writeBodyTooLarge(w http.ResponseWriter, err error) bool {
	var mbe *http.MaxBytesError
	if !errors.As(err, &mbe) {
		return false
	}
	writeError(w, tooLargeError("body", mbe.Limit, "more bytes sent"))
	return true
}

// receiveUpload streams r's body (limited by limitBody) into a new
// temporary file of td and returns its path and size; the caller removes
// it. On any error (the limit passed, the client gone, the disk failing)
// the file is removed before receiveUpload returns. Errors wrap
// structs.ErrTooLarge, structs.ErrInvalid for a body that could not be
// read, or are the disk's.
func receiveUpload(ctx context.Context, td *durable.TempDir, body io.Reader, what string) (path string, size int64, err error) {
	f, err := td.Create("upload-*")
	if err != nil {
		return "", 0, fmt.Errorf("%s: %w", what, err)
	}
	defer func() {
		if err != nil {
			f.Close()
			os.Remove(f.Name())
		}
	}()
	var readErr error
	src := readerFunc(func(p []byte) (int, error) {
		if err := ctx.Err(); err != nil {
			readErr = err
			return 0, err
		}
		n, err := body.Read(p)
		if err != nil && err != io.EOF {
			readErr = err
		}
		return n, err
	})
	size, err = io.CopyBuffer(onlyWriter{f}, src, make([]byte, uploadCopyBuf))
	var mbe *http.MaxBytesError
	switch {
	case errors.As(readErr, &mbe):
		return "", size, tooLargeError(what, mbe.Limit, "more bytes sent")
	case readErr != nil:
		return "", size, fmt.Errorf("%s: %w: reading the body after %d bytes: %w", what, structs.ErrInvalid, size, readErr)
	case err != nil:
		return "", size, fmt.Errorf("%s: %w", what, err)
	}
	if err = f.Close(); err != nil {
		return "", size, fmt.Errorf("%s: %w", what, err)
	}
	return f.Name(), size, nil
}

// readerFunc is an io.Reader made of a function.
type readerFunc func(p []byte) (int, error)

func (f readerFunc) Read(p []byte) (int, error) { return f(p) }

// onlyWriter hides everything of a writer but Write, so io.CopyBuffer
// copies through the given buffer instead of ReadFrom's choice.
type onlyWriter struct{ w io.Writer }

func (o onlyWriter) Write(p []byte) (int, error) { return o.w.Write(p) }
