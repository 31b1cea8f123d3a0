package replica_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

func fetch(t *testing.T, method, url string) (*http.Response, string) {
	t.Helper()
	req, err := http.NewRequest(method, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp, string(b)
}

// Every node serves the web console at / beside the API: the app's routes
// get its page, the API's paths keep their JSON answers; console.enabled
// off leaves an API-only node.
func TestNodeServesTheConsole(t *testing.T) {
	c := testcluster.New(t, 1)
	base := c.HTTPBase(0)
	for _, p := range []string{"/", "/screen", "/m", "/cases/320582-20261122-000001"} {
		resp, body := fetch(t, "GET", base+p)
		if resp.StatusCode != 200 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "text/html") || !strings.Contains(body, `<div id="app">`) {
			t.Errorf("GET %s: %d %s", p, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		if !strings.Contains(resp.Header.Get("Content-Security-Policy"), "default-src 'self'") {
			t.Errorf("GET %s: CSP %q", p, resp.Header.Get("Content-Security-Policy"))
		}
	}
	for _, tc := range []struct{ method, path string }{{"GET", "/v1/nothing-here"}, {"POST", "/"}, {"GET", "/healthz"}} {
		resp, body := fetch(t, tc.method, base+tc.path)
		if !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || strings.Contains(body, `<div id="app">`) {
			t.Errorf("%s %s: %d %s: want the API's JSON", tc.method, tc.path, resp.StatusCode, resp.Header.Get("Content-Type"))
		}
	}

	off := testcluster.New(t, 1, func(c *config.Config) { c.Console.Enabled = false })
	if resp, _ := fetch(t, "GET", off.HTTPBase(0)+"/screen"); resp.StatusCode != http.StatusNotFound {
		t.Errorf("console.enabled false: GET /screen answered %d, want 404", resp.StatusCode)
	}
}
