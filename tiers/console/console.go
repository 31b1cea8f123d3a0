// Package console serves the web console (the 大屏 at /screen, the
// operator seats, the handheld terminal at /m) from the assets built by
// `make console` into web/dist and embedded in the binary: every node
// serves it at / with no internet (no CDN, no online tiles). The console
// talks to the node only through the REST gateway under /v1/, with the
// bearer token of AuthService's login.
//
// What the handler does: hashed assets (/assets/…) are cached for a year
// (their names change with their content), index.html is revalidated on
// every load (its ETag is its SHA-256), any other path without a file
// extension is the single-page app's route and gets index.html, a missing
// file is a 404. Every answer carries a Content-Security-Policy that
// allows nothing but this origin (no remote script, style, font, image or
// connection), nosniff and no referrer; text assets are sent gzipped to a
// browser that accepts it, compressed once.
package console

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"fmt"
	"io/fs"
	"net/http"
	"path"
	"strings"
	"sync"
	"time"
)

//go:embed all:web/dist
var dist embed.FS

// CSP is the console's Content-Security-Policy: this origin only. Inline
// style attributes are allowed (ECharts and Vue set element styles); no
// inline script, no eval, no remote origin of any kind.
const CSP = "default-src 'self'; script-src 'self'; style-src 'self' 'unsafe-inline'; " +
	"img-src 'self' blob: data:; font-src 'self'; connect-src 'self'; worker-src 'self' blob:; " +
	"object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'"

// contentTypes are set by extension, not from the machine's MIME tables
// (which differ between systems and once served .js as text/plain).
var contentTypes = map[string]string{
	".html":        "text/html; charset=utf-8",
	".js":          "text/javascript; charset=utf-8",
	".mjs":         "text/javascript; charset=utf-8",
	".css":         "text/css; charset=utf-8",
	".json":        "application/json",
	".svg":         "image/svg+xml",
	".png":         "image/png",
	".jpg":         "image/jpeg",
	".ico":         "image/x-icon",
	".woff2":       "font/woff2",
	".woff":        "font/woff",
	".txt":         "text/plain; charset=utf-8",
	".webmanifest": "application/manifest+json",
}

// compressible are the types worth gzipping.
func compressible(ext string) bool {
	switch ext {
	case ".html", ".js", ".mjs", ".css", ".json", ".svg", ".txt", ".webmanifest":
		return true
	}
	return false
}

// asset is one embedded file, with its ETag and (lazily) its gzip form.
type asset struct {
	name  string
	body  []byte
	etag  string
	ctype string

	once sync.Once
	gz   []byte
}

func (a *asset) gzipped() []byte {
	a.once.Do(func() {
		var b bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&b, gzip.BestCompression)
		_, _ = zw.Write(a.body)
		_ = zw.Close()
		if b.Len() < len(a.body) {
			a.gz = b.Bytes()
		}
	})
	return a.gz
}

// Handler serves the console.
type Handler struct {
	files map[string]*asset // by path without the leading slash
	index *asset
}

// New returns the handler of the embedded console.
func New() (*Handler, error) {
	sub, err := fs.Sub(dist, "web/dist")
	if err != nil {
		return nil, err
	}
	return NewFS(sub)
}

// NewFS returns a handler serving the built console in fsys (tests).
func NewFS(fsys fs.FS) (*Handler, error) {
	h := &Handler{files: map[string]*asset{}}
	err := fs.WalkDir(fsys, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(fsys, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ct := contentTypes[path.Ext(p)]
		if ct == "" {
			ct = "application/octet-stream"
		}
		h.files[p] = &asset{name: p, body: b, etag: `"` + hex.EncodeToString(sum[:16]) + `"`, ctype: ct}
		return nil
	})
	if err != nil {
		return nil, err
	}
	h.index = h.files["index.html"]
	if h.index == nil {
		return nil, fmt.Errorf("console: no index.html in the built assets (run make console)")
	}
	return h, nil
}

// immutable reports whether p is a content-hashed build output.
func immutable(p string) bool { return strings.HasPrefix(p, "assets/") }

// ServeHTTP answers GET and HEAD for the console's files and routes.
func (h *Handler) ServeHTTP(w http.ResponseWriter, req *http.Request) {
	hd := w.Header()
	hd.Set("Content-Security-Policy", CSP)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	if req.Method != http.MethodGet && req.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	p := strings.TrimPrefix(path.Clean("/"+req.URL.Path), "/")
	a := h.files[p]
	switch {
	case p == "" || p == "index.html":
		a = h.index
	case a == nil && path.Ext(p) == "":
		// A route of the single-page app (/screen, /m, /cases/…).
		a = h.index
	case a == nil:
		http.Error(w, "not found", http.StatusNotFound)
		return
	}
	if immutable(a.name) {
		hd.Set("Cache-Control", "public, max-age=31536000, immutable")
	} else {
		hd.Set("Cache-Control", "no-cache")
	}
	hd.Set("Content-Type", a.ctype)
	hd.Set("ETag", a.etag)
	hd.Add("Vary", "Accept-Encoding")
	body := a.body
	if compressible(path.Ext(a.name)) && acceptsGzip(req) {
		if gz := a.gzipped(); gz != nil {
			hd.Set("Content-Encoding", "gzip")
			body = gz
		}
	}
	// ServeContent answers If-None-Match (304) and ranges.
	http.ServeContent(w, req, a.name, time.Time{}, bytes.NewReader(body))
}

func acceptsGzip(req *http.Request) bool {
	for _, part := range strings.Split(req.Header.Get("Accept-Encoding"), ",") {
		enc, q, _ := strings.Cut(strings.TrimSpace(part), ";")
		if strings.EqualFold(strings.TrimSpace(enc), "gzip") && strings.TrimSpace(q) != "q=0" {
			return true
		}
	}
	return false
}
