package console

import (
	"bytes"
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"regexp"
	"strings"
	"testing"
	"testing/fstest"
)

func testFS() fstest.MapFS {
	return fstest.MapFS{
		"index.html":          {Data: []byte(`<!doctype html><script type="module" src="/assets/index-abc.js"></script>` + strings.Repeat(" ", 2000))},
		"assets/index-abc.js": {Data: []byte(strings.Repeat("console.log('cityhub');\n", 200))},
		"favicon.svg":         {Data: []byte(`<svg xmlns="http://www.w3.org/2000/svg"/>`)},
	}
}

func get(t *testing.T, h http.Handler, method, path string, hdr map[string]string) *httptest.ResponseRecorder {
	t.Helper()
	req := httptest.NewRequest(method, path, nil)
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, req)
	return w
}

func TestServesFilesRoutesAndHeaders(t *testing.T) {
	h, err := NewFS(testFS())
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		path, ctype, cache string
		code               int
		index              bool
	}{
		{"/", "text/html; charset=utf-8", "no-cache", 200, true},
		{"/index.html", "text/html; charset=utf-8", "no-cache", 200, true},
		{"/screen", "text/html; charset=utf-8", "no-cache", 200, true},                       // the app's route
		{"/cases/320500-20261203-000001", "text/html; charset=utf-8", "no-cache", 200, true}, // a case page
		{"/m", "text/html; charset=utf-8", "no-cache", 200, true},
		{"/assets/index-abc.js", "text/javascript; charset=utf-8", "public, max-age=31536000, immutable", 200, false},
		{"/favicon.svg", "image/svg+xml", "no-cache", 200, false},
		{"/assets/missing-123.js", "", "", 404, false},
		{"/nope.png", "", "", 404, false},
	} {
		w := get(t, h, "GET", tc.path, nil)
		if w.Code != tc.code {
			t.Errorf("GET %s: %d, want %d", tc.path, w.Code, tc.code)
			continue
		}
		if csp := w.Header().Get("Content-Security-Policy"); csp != CSP {
			t.Errorf("GET %s: CSP %q", tc.path, csp)
		}
		if w.Header().Get("X-Content-Type-Options") != "nosniff" {
			t.Errorf("GET %s: no nosniff", tc.path)
		}
		if tc.code != 200 {
			continue
		}
		if got := w.Header().Get("Content-Type"); got != tc.ctype {
			t.Errorf("GET %s: Content-Type %q, want %q", tc.path, got, tc.ctype)
		}
		if got := w.Header().Get("Cache-Control"); got != tc.cache {
			t.Errorf("GET %s: Cache-Control %q, want %q", tc.path, got, tc.cache)
		}
		if isIndex := strings.HasPrefix(w.Body.String(), "<!doctype html>"); isIndex != tc.index {
			t.Errorf("GET %s: index.html %v, want %v", tc.path, isIndex, tc.index)
		}
	}
	if w := get(t, h, "POST", "/screen", nil); w.Code != http.StatusMethodNotAllowed {
		t.Errorf("POST /screen: %d, want 405", w.Code)
	}
	if w := get(t, h, "HEAD", "/", nil); w.Code != 200 || w.Body.Len() != 0 {
		t.Errorf("HEAD /: %d with %d bytes", w.Code, w.Body.Len())
	}
}

func TestGzipAndRevalidation(t *testing.T) {
	h, err := NewFS(testFS())
	if err != nil {
		t.Fatal(err)
	}
	plain := get(t, h, "GET", "/assets/index-abc.js", nil)
	w := get(t, h, "GET", "/assets/index-abc.js", map[string]string{"Accept-Encoding": "br, gzip;q=0.8"})
	if w.Header().Get("Content-Encoding") != "gzip" || w.Body.Len() >= plain.Body.Len() {
		t.Fatalf("gzip: encoding %q, %d bytes against %d plain", w.Header().Get("Content-Encoding"), w.Body.Len(), plain.Body.Len())
	}
	zr, err := gzip.NewReader(w.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(zr)
	if !bytes.Equal(got, plain.Body.Bytes()) {
		t.Error("the gzipped body is not the file")
	}
	if w := get(t, h, "GET", "/assets/index-abc.js", map[string]string{"Accept-Encoding": "gzip;q=0"}); w.Header().Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 still gzipped")
	}
	etag := plain.Header().Get("ETag")
	if etag == "" {
		t.Fatal("no ETag")
	}
	if w := get(t, h, "GET", "/", map[string]string{"If-None-Match": get(t, h, "GET", "/", nil).Header().Get("ETag")}); w.Code != http.StatusNotModified {
		t.Errorf("If-None-Match on index.html: %d, want 304", w.Code)
	}
}

// The CSP names no origin but this one: no CDN, no tiles, nothing remote.
func TestCSPAllowsNoRemoteOrigin(t *testing.T) {
	if m := regexp.MustCompile(`(?i)https?:|wss?:|\*|'unsafe-eval'`).FindString(CSP); m != "" {
		t.Errorf("CSP allows %q: %s", m, CSP)
	}
	for _, d := range []string{"default-src 'self'", "script-src 'self'", "connect-src 'self'", "object-src 'none'", "frame-ancestors 'none'"} {
		if !strings.Contains(CSP, d) {
			t.Errorf("CSP lacks %q", d)
		}
	}
}

// The committed build is complete: index.html's scripts and styles are
// embedded, and nothing in it loads from another origin.
func TestEmbeddedBuildIsComplete(t *testing.T) {
	h, err := New()
	if err != nil {
		t.Fatal(err)
	}
	index := string(h.index.body)
	refs := regexp.MustCompile(`(?:src|href)="([^"]+)"`).FindAllStringSubmatch(index, -1)
	if len(refs) < 2 {
		t.Fatalf("index.html refers to %d files: %s", len(refs), index)
	}
	for _, r := range refs {
		if !strings.HasPrefix(r[1], "/") || strings.HasPrefix(r[1], "//") {
			t.Errorf("index.html loads %q from elsewhere", r[1])
			continue
		}
		if w := get(t, h, "GET", r[1], nil); w.Code != 200 {
			t.Errorf("index.html refers to %s: %d", r[1], w.Code)
		}
	}
	for name, a := range h.files {
		if strings.HasSuffix(name, ".js") || strings.HasSuffix(name, ".css") || strings.HasSuffix(name, ".html") {
			if m := regexp.MustCompile(`(?:src|href)=["']https?://|url\(["']?https?://|import\(["']https?://`).Find(a.body); m != nil {
				t.Errorf("%s loads from another origin: %s", name, m)
			}
		}
	}
}
