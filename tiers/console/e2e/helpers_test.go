//go:build browser

// Package e2e drives the web console in a real headless Chromium against
// an in-process federation (make e2e-console). The browser comes from
// CITYHUB_CHROMIUM or the PATH (Debian's chromium); without one the test
// fails, it never skips.
package e2e

import (
	"bytes"
	"context"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/paulmach/orb/planar"
	"google.golang.org/grpc/metadata"

	"github.com/cityhub/cityhub/federation/fedtest"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/geo"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

const (
	adminPassword = "admin-password-0001"
	seatPassword  = "seat-password-0001"
	city, comm    = "city", "c-320505001001"
	grid          = "320505001001007" // a grid of 狮山社区, held by c-320505001001
	unit          = "320505001001-grid"
	unitName      = "狮山社区网格工作站"
)

// chromium finds the browser: CITYHUB_CHROMIUM, else the PATH.
func chromium(t testing.TB) string {
	t.Helper()
	if p := os.Getenv("CITYHUB_CHROMIUM"); p != "" {
		if _, err := os.Stat(p); err != nil {
			t.Fatalf("CITYHUB_CHROMIUM=%s: %v", p, err)
		}
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	t.Fatal("no Chromium found: install it (Debian: apt-get install -y chromium fonts-noto-cjk) or set CITYHUB_CHROMIUM to the browser's path; this test does not skip")
	return ""
}

// seats makes the test's accounts at a node through its AuthService, as
// the node's administrator.
func seats(t testing.TB, f *fedtest.Federation, node string, accounts ...*pb.CreateAccountRequest) {
	t.Helper()
	g := f.Groups[node]
	testcluster.WaitFor(t, 60*time.Second, "the first administrator at "+node, func() bool {
		_, err := g.Replica(0).Node.Store().GetAccount("admin")
		return err == nil
	})
	ac := pb.NewAuthServiceClient(g.Conn(0))
	var tok string
	testcluster.WaitFor(t, 60*time.Second, "the administrator's login at "+node, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		r, err := ac.Login(ctx, &pb.LoginRequest{Username: "admin", Password: adminPassword})
		if err == nil {
			tok = r.AccessToken
		}
		return err == nil
	})
	for _, a := range accounts {
		a.RequestId, a.Password = "e2e-acct-"+node+"-"+a.Name, seatPassword
		ctx, cancel := context.WithTimeout(metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tok), 30*time.Second)
		_, err := ac.CreateAccount(ctx, a)
		cancel()
		if err != nil {
			t.Fatalf("account %s at %s: %v", a.Name, node, err)
		}
	}
}

// photo writes a small JPEG, as a phone's camera would give.
func photo(t testing.TB) string {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, 160, 120))
	for y := 0; y < 120; y++ {
		for x := 0; x < 160; x++ {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y * 2), 90, 255})
		}
	}
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, nil); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "after.jpg")
	if err := os.WriteFile(p, b.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// tab is one browser tab of the test.
type tab struct {
	name string
	ctx  context.Context
}

// browser starts Chromium and returns a function that opens tabs; on
// failure every tab's screenshot is saved in the test's artifact
// directory (go test -artifacts -outputdir DIR keeps them), and with
// CITYHUB_SCREENSHOTS set the good ones are copied there (the README's).
type browser struct {
	t    testing.TB
	root context.Context
	tabs []*tab
}

func newBrowser(t testing.TB) *browser {
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromium(t)),
		chromedp.NoSandbox, // CI runs as root
		chromedp.DisableGPU,
		chromedp.WindowSize(1600, 1000),
		chromedp.Flag("lang", "zh-CN"),
		chromedp.Flag("disable-dev-shm-usage", true),
	)
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelR := chromedp.NewContext(actx)
	if err := chromedp.Do(root); err != nil { // starts the browser, bound to root
		cancelR()
		cancelA()
		t.Fatalf("start Chromium: %v", err)
	}
	b := &browser{t: t, root: root}
	t.Cleanup(func() {
		if t.Failed() {
			b.screenshots(t.ArtifactDir(), "failed-")
		}
		cancelR()
		cancelA()
	})
	return b
}

// open opens a tab (the first is the browser's own) with a viewport.
func (b *browser) open(name string, w, h int64, mobile bool) *tab {
	b.t.Helper()
	ctx := b.root
	if len(b.tabs) > 0 {
		ctx, _ = chromedp.NewContext(b.root)
	}
	em := chromedp.EmulateViewport(w, h)
	if mobile {
		em = chromedp.EmulateViewport(w, h, chromedp.EmulateScale(2), chromedp.EmulateMobile, chromedp.EmulateTouch)
	}
	if err := chromedp.Do(ctx, em); err != nil {
		b.t.Fatalf("tab %s: %v", name, err)
	}
	tb := &tab{name: name, ctx: ctx}
	b.tabs = append(b.tabs, tb)
	return tb
}

func (b *browser) screenshots(dir, prefix string) {
	for _, tb := range b.tabs {
		ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
		png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
		cancel()
		if err != nil {
			b.t.Logf("screenshot of %s: %v", tb.name, err)
			continue
		}
		p := filepath.Join(dir, prefix+tb.name+".png")
		if err := os.WriteFile(p, png, 0o644); err == nil {
			b.t.Logf("screenshot: %s", p)
		}
	}
}

// shot saves one tab's screenshot under name in CITYHUB_SCREENSHOTS (the
// README's pictures), when it is set, and in the artifact directory.
func (b *browser) shot(tb *tab, name string) {
	ctx, cancel := context.WithTimeout(tb.ctx, 20*time.Second)
	defer cancel()
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot %s: %v", name, err)
		return
	}
	for _, dir := range []string{os.Getenv("CITYHUB_SCREENSHOTS"), b.t.ArtifactDir()} {
		if dir != "" {
			_ = os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644)
		}
	}
}

// run runs actions in tab with a generous bound (a loaded 2-core CI box).
func (tb *tab) run(t testing.TB, what string, steps ...chromedp.Action[chromedp.Void]) {
	t.Helper()
	ctx, cancel := context.WithTimeout(tb.ctx, 60*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, steps...); err != nil {
		t.Fatalf("%s (%s): %v", what, tb.name, err)
	}
}

// eval evaluates a JavaScript expression in tab into v.
func eval[T any](expr string, v *T) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		r, err := chromedp.Evaluate[T](expr)(ctx, tg)
		*v = r
		return err
	})
}

// attr reads an attribute of the element sel into v.
func attr(sel, name string, v *string) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		r, err := chromedp.AttributeValue(chromedp.CSS(sel), name)(ctx, tg)
		*v = r.Value
		return err
	})
}

// login signs in on the console's login page of base and waits for next.
func (tb *tab) login(t testing.TB, base, user, next, ready string) {
	t.Helper()
	tb.run(t, "login as "+user,
		chromedp.Navigate(base+"/login?next="+next),
		chromedp.WaitVisible(chromedp.CSS(`#u`)),
		chromedp.SendKeys(chromedp.CSS(`#u`), user),
		chromedp.SendKeys(chromedp.CSS(`#p`), seatPassword),
		chromedp.Click(chromedp.CSS(`[data-testid=login]`)),
		chromedp.WaitVisible(chromedp.CSS(ready)),
	)
}

// choose sets a <select> as a person picking an option does (the change
// event Vue listens to).
func choose(sel, value string) chromedp.Action[chromedp.Void] {
	var got string
	return eval(fmt.Sprintf(`(() => { const s = document.querySelector(%q); s.value = %q; s.dispatchEvent(new Event('change', {bubbles: true})); return s.value })()`, sel, value), &got)
}

// offline cuts the tab's network (requests fail, navigator.onLine is
// false) or gives it back (the page gets its online event).
func offline(on bool) chromedp.Action[chromedp.Void] {
	return chromedp.Func(func(ctx context.Context, tg *chromedp.Target) error {
		if _, err := cdp.Call(ctx, tg, network.Enable, network.EnableParams{}); err != nil {
			return err
		}
		if _, err := cdp.Call(ctx, tg, network.EmulateNetworkConditionsByRule, network.EmulateNetworkConditionsByRuleParams{
			MatchedNetworkConditions: []*network.Conditions{{Offline: on, DownloadThroughput: -1, UploadThroughput: -1}},
		}); err != nil {
			return err
		}
		_, err := cdp.Call(ctx, tg, network.OverrideNetworkState, network.OverrideNetworkStateParams{Offline: on, DownloadThroughput: -1, UploadThroughput: -1})
		return err
	})
}

// gridCentre is the WGS-84 centre of a sample grid.
func gridCentre(t testing.TB, code string) (lat, lng float64) {
	t.Helper()
	reg, err := geo.Sample()
	if err != nil {
		t.Fatal(err)
	}
	g, ok := reg.Grid(code)
	if !ok {
		t.Fatalf("no sample grid %s", code)
	}
	c, _ := planar.CentroidArea(g.Shape)
	return c.Lat(), c.Lon()
}
