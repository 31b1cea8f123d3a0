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
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
	"github.com/paulmach/orb/planar"
	"google.golang.org/grpc/metadata"

	"github.com/cityhub/cityhub/config"
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
)

// chromium finds the browser: CITYHUB_CHROMIUM, else the PATH.
func chromium(t *testing.T) string {
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
func seats(t *testing.T, f *fedtest.Federation, node string, accounts ...*pb.CreateAccountRequest) {
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
func photo(t *testing.T) string {
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
	t    *testing.T
	root context.Context
	tabs []*tab
}

func newBrowser(t *testing.T) *browser {
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
func (tb *tab) run(t *testing.T, what string, steps ...chromedp.Action[chromedp.Void]) {
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
func (tb *tab) login(t *testing.T, base, user, next, ready string) {
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
func gridCentre(t *testing.T, code string) (lat, lng float64) {
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

// Acceptance (issue 16): a dispatcher at the city reports a case by
// clicking the map, files it and dispatches it to a community unit; the
// community's grid worker, on the phone-sized terminal, accepts it and
// handles it with a photo (the acceptance done without signal, queued on
// the phone and sent when the network is back); the community's inspector checks it with a
// photo and its shift leader closes it; all the while the city's 大屏,
// opened in its own tab before the report, shows the case move and close
// from the change feed, without a reload.
func TestConsoleCaseFromMapClickToClose(t *testing.T) {
	pw := filepath.Join(t.TempDir(), "admin-password")
	if err := os.WriteFile(pw, []byte(adminPassword+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	b := newBrowser(t) // first: a missing browser fails before the federation starts
	f := fedtest.New(t, []fedtest.NodeSpec{
		{Name: city, Tier: "city", Jurisdiction: "320500", Units: []string{"city-water", "city-parks"}},
		{Name: "d-320505", Tier: "district", Jurisdiction: "320505", Parent: city, Units: []string{"320505-sanitation"}},
		{Name: "s-320505001", Tier: "street", Jurisdiction: "320505001", Parent: "d-320505", Units: []string{"320505001-squad"}},
		{Name: comm, Tier: "community", Jurisdiction: "320505001001", Parent: "s-320505001", Units: []string{unit}},
	}, 1, func(c *config.Config) {
		c.Auth.Disabled = false
		c.Auth.AdminPasswordFile = pw
	})
	seats(t, f, city,
		&pb.CreateAccountRequest{Name: "lead", DisplayName: "市指挥中心值班长", Role: pb.Role_ROLE_SHIFT_LEADER})
	seats(t, f, comm,
		&pb.CreateAccountRequest{Name: "grid", DisplayName: "狮山社区网格员", Role: pb.Role_ROLE_HANDLING_UNIT, Unit: unit},
		&pb.CreateAccountRequest{Name: "insp", DisplayName: "狮山社区监督员", Role: pb.Role_ROLE_INSPECTOR, Grids: []string{"320505001001"}},
		&pb.CreateAccountRequest{Name: "lead", DisplayName: "狮山社区值班长", Role: pb.Role_ROLE_SHIFT_LEADER})
	cityURL, commURL := f.Groups[city].HTTPBase(0), f.Groups[comm].HTTPBase(0)

	// The city's 大屏, open from the start.
	screen := b.open("screen", 1600, 1000, false)
	screen.login(t, cityURL, "lead", "/screen", `[data-testid=live-status][data-status=live]`)
	var loadedAt float64
	screen.run(t, "the screen's load mark", eval(`window.__screenLoadedAt`, &loadedAt))

	// The dispatcher's seat: report by clicking the map.
	seat := b.open("seat", 1600, 1000, false)
	seat.login(t, cityURL, "lead", "/intake", `[data-testid=intake-map] canvas`)
	lat, lng := gridCentre(t, grid)
	var px struct{ X, Y float64 }
	seat.run(t, "the map is drawn",
		chromedp.Func(func(ctx context.Context, tg *chromedp.Target) (err error) {
			_, err = chromedp.Poll[bool](`!!(window.__cityhubMap && window.__cityhubMap.ready)`, chromedp.WithPollingTimeout(60*time.Second))(ctx, tg)
			return err
		}),
		eval(fmt.Sprintf(`window.__cityhubMap.pixelOf(%v, %v)`, lng, lat), &px),
	)
	var caseID string
	seat.run(t, "report by clicking the map",
		chromedp.MouseClickXY(px.X, px.Y),
		chromedp.WaitVisible(chromedp.CSS(fmt.Sprintf(`[data-testid=located][data-grid="%s"]`, grid))),
		choose(`#src`, "SOURCE_LEADER"),
		choose(`#cls`, "KIND_EVENT/01/02"),
		chromedp.SendKeys(chromedp.CSS(`#addr`), "狮山路 88 号"),
		chromedp.SendKeys(chromedp.CSS(`#desc`), "狮山路人行道暴露垃圾，约两立方米"),
		chromedp.Click(chromedp.CSS(`[data-testid=report]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=reported]`)),
		attr(`[data-testid=reported]`, "data-case", &caseID),
	)
	if !strings.HasPrefix(caseID, "320500-") {
		t.Fatalf("reported case id %q; want one of the city's", caseID)
	}
	title := func(state string) string { return fmt.Sprintf(`[data-testid=case-title][data-state=%s]`, state) }
	seat.run(t, "file and dispatch to the community's grid station",
		chromedp.Click(chromedp.CSS(`[data-testid=reported-link]`)),
		chromedp.WaitVisible(chromedp.CSS(title("STATE_REPORTED"))),
		chromedp.Click(chromedp.CSS(`button[data-action=ACTION_FILE]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=submit-action]`)),
		chromedp.WaitVisible(chromedp.CSS(title("STATE_FILED"))),
		chromedp.Click(chromedp.CSS(`button[data-action=ACTION_DISPATCH]`)),
		chromedp.Clear(chromedp.CSS(`#unit`)),
		chromedp.SendKeys(chromedp.CSS(`#unit`), unit),
		choose(`#tier`, "TIER_COMMUNITY"),
		chromedp.Click(chromedp.CSS(`[data-testid=submit-action]`)),
		chromedp.WaitVisible(chromedp.CSS(title("STATE_DISPATCHED"))),
		// Handed down to the community: the city keeps a read-only mirror.
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=mirror]`)),
	)
	change := func(state string) string {
		return fmt.Sprintf(`[data-testid=change][data-case="%s"][data-state=%s]`, caseID, state)
	}
	screen.run(t, "the 大屏 shows the dispatch", chromedp.WaitVisible(chromedp.CSS(change("STATE_DISPATCHED"))))
	b.shot(seat, "console-case")

	// The community's grid worker, phone-sized: accept, handle with a photo.
	pic := photo(t)
	phone := b.open("phone", 390, 844, true)
	task := fmt.Sprintf(`article.task[data-case="%s"]`, caseID)
	phone.login(t, commURL, "grid", "/m", `[data-testid=terminal]`)
	phone.run(t, "accept without signal: the step waits on the phone",
		chromedp.WaitVisible(chromedp.CSS(task+`[data-state=STATE_DISPATCHED]`)),
		offline(true),
		chromedp.Click(chromedp.CSS(task+` button[data-action=accept]`)),
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=queue][data-queued="1"]`)),
	)
	if c, err := f.Groups[comm].Replica(0).Node.Store().GetCase(caseID); err != nil || c.State != pb.State_STATE_DISPATCHED {
		t.Fatalf("with the phone offline the community has the case in %v (%v); want it still dispatched", c.GetState(), err)
	}
	phone.run(t, "signal back: the queued step is sent",
		offline(false),
		chromedp.WaitVisible(chromedp.CSS(task+`[data-state=STATE_ACCEPTED]`)),
		chromedp.WaitNotPresent(chromedp.CSS(`[data-testid=queue][data-queued="1"]`)),
	)
	b.shot(phone, "console-terminal")
	phone.run(t, "handle with a photo",
		chromedp.Click(chromedp.CSS(task+` button[data-action=handle]`)),
		chromedp.SetUploadFiles(chromedp.CSS(task+` input[type=file]`), []string{pic}),
		chromedp.SendKeys(chromedp.CSS(task+` textarea`), "已清运，现场恢复整洁"),
		chromedp.Click(chromedp.CSS(task+` [data-testid=task-submit]`)),
		// Handled, the case leaves the unit's task list.
		chromedp.WaitNotPresent(chromedp.CSS(task)),
	)
	screen.run(t, "the 大屏 shows the handling", chromedp.WaitVisible(chromedp.CSS(change("STATE_HANDLED"))))

	// The community's inspector checks it with a photo; its shift leader closes it.
	insp := b.open("inspector", 390, 844, true)
	insp.login(t, commURL, "insp", "/m", `[data-testid=terminal]`)
	insp.run(t, "check on the terminal",
		chromedp.WaitVisible(chromedp.CSS(task+`[data-state=STATE_HANDLED]`)),
		chromedp.Click(chromedp.CSS(task+` button[data-action=checkPass]`)),
		chromedp.SetUploadFiles(chromedp.CSS(task+` input[type=file]`), []string{pic}),
		chromedp.Click(chromedp.CSS(task+` [data-testid=task-submit]`)),
		chromedp.WaitNotPresent(chromedp.CSS(task)),
	)
	closer := b.open("community-seat", 1600, 1000, false)
	closer.login(t, commURL, "lead", "/cases/"+caseID, title("STATE_CHECKED"))
	closer.run(t, "close at the community",
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=photo]`)), // the handling's photo, read through the evidence API
		chromedp.Click(chromedp.CSS(`button[data-action=ACTION_CLOSE]`)),
		chromedp.Click(chromedp.CSS(`[data-testid=submit-action]`)),
		chromedp.WaitVisible(chromedp.CSS(title("STATE_CLOSED"))),
	)

	screen.run(t, "the 大屏 shows the close, and its numbers follow",
		chromedp.WaitVisible(chromedp.CSS(change("STATE_CLOSED"))),
		// Today's flow from the dashboard's counters, read again after changes.
		chromedp.WaitVisible(chromedp.CSS(`[data-testid=flow][data-closed="1"]`)),
	)
	var after float64
	screen.run(t, "the screen's load mark again", eval(`window.__screenLoadedAt`, &after))
	if after != loadedAt {
		t.Errorf("the 大屏 reloaded (load mark %v, now %v); it must follow the feed", loadedAt, after)
	}
	b.shot(screen, "console-screen")
	b.shot(closer, "console-case-closed")

	// The photos are the case's evidence, named by the handling and the check.
	lc := pb.NewAuthServiceClient(f.Groups[comm].Conn(0))
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tok, err := lc.Login(ctx, &pb.LoginRequest{Username: "lead", Password: seatPassword})
	if err != nil {
		t.Fatal(err)
	}
	c, err := f.Groups[comm].Cases(0).GetCase(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+tok.AccessToken), &pb.GetCaseRequest{CaseId: caseID})
	if err != nil {
		t.Fatal(err)
	}
	var handled, checked bool
	for _, h := range c.History {
		handled = handled || (h.Action == pb.Action_ACTION_HANDLE && len(h.Evidence) == 1 && h.Principal == "acct:grid")
		checked = checked || (h.Action == pb.Action_ACTION_CHECK_PASS && len(h.Evidence) == 1 && h.Principal == "acct:insp")
	}
	if c.State != pb.State_STATE_CLOSED || !handled || !checked || len(c.Evidence) != 1 {
		t.Errorf("case %s: state %s, handled with a photo %v, checked with a photo %v, evidence %d; want closed, both, 1 (the same photo)",
			caseID, c.State, handled, checked, len(c.Evidence))
	}
}
