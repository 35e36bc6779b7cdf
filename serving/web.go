package serving

import (
	"crypto/sha256"
	_ "embed" // for the page below
	"encoding/base64"
	"net/http"
	"strings"
	"time"
)

// indexHTML is the upload page: plain HTML, CSS and JS in one file with no
// external resources, so it works on a machine with no Internet access.
//
//go:embed web/index.html
var indexHTML string

// WebPage returns the handler of the small web page of docs/architecture.md: choose or
// drop an image, and see the mask the served model predicts for it drawn over
// the image, with the latency, the model version and a legend of the
// classes. The page talks to the same predict API as any client (GET
// /v1/models, then POST /v1/models/{name}:predict with Accept: image/png), so
// it needs nothing else from the server. It answers GET and HEAD for any path
// it is mounted at; mount it at the root with
// srv.Mount("GET /{$}", serving.WebPage()) or (*Server).MountWebPage.
//
// The response carries a Content-Security-Policy that allows only the page's
// own inline script and style (by hash) and requests to its own origin.
func WebPage() http.Handler {
	csp := "default-src 'none'; " +
		"script-src " + inlineHashes(indexHTML, "script") + "; " +
		"style-src " + inlineHashes(indexHTML, "style") + "; " +
		"connect-src 'self'; img-src 'self' blob: data:; " +
		"base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		h := w.Header()
		h.Set("Content-Type", "text/html; charset=utf-8")
		h.Set("Content-Security-Policy", csp)
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("Cache-Control", "no-cache")
		// A fresh reader per request (it does not copy the page):
		// ServeContent seeks it, so it cannot be shared.
		http.ServeContent(w, r, "index.html", time.Time{}, strings.NewReader(indexHTML))
	})
}

// MountWebPage mounts WebPage at the server's root ("GET /{$}", which also
// answers HEAD). Like Mount, it may be called before or after Handler.
func (s *Server) MountWebPage() {
	s.Mount("GET /{$}", WebPage())
}

// inlineHashes returns the CSP source list ('sha256-…' for each) of the
// contents of every <tag>…</tag> element in page, or 'none' if it has none.
func inlineHashes(page, tag string) string {
	open, end := "<"+tag+">", "</"+tag+">"
	var srcs []string
	for rest := page; ; {
		i := strings.Index(rest, open)
		if i < 0 {
			break
		}
		rest = rest[i+len(open):]
		j := strings.Index(rest, end)
		if j < 0 {
			break
		}
		sum := sha256.Sum256([]byte(rest[:j]))
		srcs = append(srcs, "'sha256-"+base64.StdEncoding.EncodeToString(sum[:])+"'")
		rest = rest[j+len(end):]
	}
	if len(srcs) == 0 {
		return "'none'"
	}
	return strings.Join(srcs, " ")
}
