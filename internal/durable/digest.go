package durable

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"os"
)

// FileSHA256 returns the SHA-256 of the bytes of the file at path, as 64
// lowercase hex digits, and the file's size. It is the one file digest of
// the module: the dataset store records it as a version file's
// file_sha256, and the artifact store names a blob by it (with its
// "sha256:" prefix added by the caller).
func FileSHA256(path string) (sum string, size int64, err error) {
	f, err := os.Open(path)
	if err != nil {
		return "", 0, err
	}
	defer f.Close()
	h := sha256.New()
	n, err := io.Copy(h, f)
	if err != nil {
		return "", 0, fmt.Errorf("hash %s: %w", path, err)
	}
	return hex.EncodeToString(h.Sum(nil)), n, nil
}
