// Package deploy_test checks the files of config/deploy against the code:
// the configurations of the compose files, the Kubernetes example and the
// systemd example load and validate as cityhubd would load them, and every
// metric the Grafana dashboard and the Prometheus alert rules name is one a
// running node exports.
package deploy_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"sort"
	"strings"
	"testing"
	"time"

	"go.yaml.in/yaml/v3"
	"google.golang.org/grpc/metadata"

	"github.com/cityhub/cityhub/config"
	"github.com/cityhub/cityhub/federation/certs"
	"github.com/cityhub/cityhub/federation/fedtest"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// metricName finds the metric names in a PromQL expression: cityhub's own
// (every identifier with the prefix; label values are quoted and never
// start so).
var metricName = regexp.MustCompile(`\bcityhub_[a-zA-Z0-9_]+\b`)

// alertExprs are the expressions of prometheus/alerts.yaml.
func alertExprs(t *testing.T) map[string]string {
	t.Helper()
	var rules struct {
		Groups []struct {
			Rules []struct {
				Alert, Record, Expr string
			}
		}
	}
	readYAML(t, "prometheus/alerts.yaml", &rules)
	out := map[string]string{}
	for _, g := range rules.Groups {
		for _, r := range g.Rules {
			out["alert "+r.Alert+r.Record] = r.Expr
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d rules in prometheus/alerts.yaml", len(out))
	}
	return out
}

// dashboardExprs are the queries of grafana/cityhub.json: panel targets'
// expr, template variables' query and definition.
func dashboardExprs(t *testing.T) map[string]string {
	t.Helper()
	raw, err := os.ReadFile("grafana/cityhub.json")
	if err != nil {
		t.Fatal(err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatalf("grafana/cityhub.json: %v", err)
	}
	out := map[string]string{}
	var walk func(path string, v any)
	walk = func(path string, v any) {
		switch x := v.(type) {
		case map[string]any:
			for k, e := range x {
				if s, ok := e.(string); ok && (k == "expr" || k == "query" || k == "definition") {
					out[path+"."+k] = s
					continue
				}
				walk(path+"."+k, e)
			}
		case []any:
			for i, e := range x {
				walk(fmt.Sprintf("%s[%d]", path, i), e)
			}
		}
	}
	walk("dashboard", doc)
	if len(out) < 20 {
		t.Fatalf("only %d queries in grafana/cityhub.json", len(out))
	}
	return out
}

func readYAML(t *testing.T, path string, v any) {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := yaml.Unmarshal(raw, v); err != nil {
		t.Fatalf("%s: %v", path, err)
	}
}

// TestDashboardAndAlertsNameExportedMetrics: a small federation as the
// examples run it (a city and a district of 3 replicas each, mutual TLS
// between them, authentication on) takes some writes, a refused call and
// REST calls; then every cityhub_ metric the dashboard's queries and the
// alert rules' expressions name is one its replicas export. With
// CITYHUB_PROMTOOL set (CI), promtool check metrics lints what they
// export.
func TestDashboardAndAlertsNameExportedMetrics(t *testing.T) {
	exprs := alertExprs(t)
	for k, v := range dashboardExprs(t) {
		exprs[k] = v
	}

	dir := t.TempDir()
	if err := certs.GenerateDev(dir, []string{"city", "d-320505"}, certs.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	const adminPW = "admin-password-0001"
	pwFile := filepath.Join(dir, "admin-password")
	if err := os.WriteFile(pwFile, []byte(adminPW+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	specs := []fedtest.NodeSpec{
		{Name: "city", Tier: "city", Jurisdiction: "320500", Units: []string{"city-water"}},
		{Name: "d-320505", Tier: "district", Jurisdiction: "320505", Parent: "city", Units: []string{"320505-roads"}},
	}
	f := fedtest.New(t, specs, 3, func(c *config.Config) {
		files := certs.NodeFiles(dir, c.Federation.Node)
		c.Federation.Insecure = false
		c.Federation.TLS = config.TLSConfig{CA: files.CA, Cert: files.Cert, Key: files.Key}
		c.Auth.Disabled = false
		c.Auth.AdminPasswordFile = pwFile
	})
	city := f.Groups["city"]
	leader := city.WaitLeader(20 * time.Second)
	authc := pb.NewAuthServiceClient(city.Conn(leader))
	var admin string
	testcluster.WaitFor(t, 60*time.Second, "the city's first administrator", func() bool {
		tok, err := authc.Login(context.Background(), &pb.LoginRequest{Username: "admin", Password: adminPW})
		if err == nil {
			admin = tok.AccessToken
		}
		return err == nil
	})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	as := func(cred string) context.Context {
		return metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+cred)
	}
	if _, err := authc.CreateAccount(as(admin), &pb.CreateAccountRequest{RequestId: "deploy-clerk", Name: "clerk",
		DisplayName: "受理员", Role: pb.Role_ROLE_INTAKE_CLERK, Password: "clerk-password-0001"}); err != nil {
		t.Fatalf("create the clerk: %v", err)
	}
	tok, err := authc.Login(ctx, &pb.LoginRequest{Username: "clerk", Password: "clerk-password-0001"})
	if err != nil {
		t.Fatalf("clerk login: %v", err)
	}
	clerk := tok.AccessToken
	cases := pb.NewCaseServiceClient(city.Conn(leader))
	for i := range 3 {
		if _, err := cases.ReportCase(as(clerk), &pb.ReportCaseRequest{RequestId: fmt.Sprintf("deploy-%d", i), Source: pb.Source_SOURCE_HOTLINE_12345,
			Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320505001001001", Description: "暴露垃圾"}); err != nil {
			t.Fatalf("report %d: %v", i, err)
		}
	}
	// An anti-entropy comparison with the district (cityhub_antientropy_*),
	// a refused call (cityhub_auth_denied_total) and a REST call.
	testcluster.WaitFor(t, 30*time.Second, "an anti-entropy comparison with the district", func() bool {
		_, err := pb.NewOwnershipServiceClient(city.Conn(city.WaitLeader(10*time.Second))).AntiEntropy(as(admin), &pb.AntiEntropyRequest{})
		return err == nil
	})
	if _, err := authc.ListAccounts(as(clerk), &pb.ListAccountsRequest{}); err == nil {
		t.Fatal("a clerk listed the accounts")
	}
	req, _ := http.NewRequest(http.MethodGet, city.HTTPBase(leader)+"/v1/cases?page_size=1", nil)
	req.Header.Set("Authorization", "Bearer "+clerk)
	if resp, err := http.DefaultClient.Do(req); err != nil {
		t.Fatal(err)
	} else {
		resp.Body.Close()
	}

	exported := map[string]bool{}
	var leaderText []byte
	for _, name := range []string{"city", "d-320505"} {
		g := f.Groups[name]
		for _, i := range g.Up() {
			text := get(t, g.HTTPBase(i)+"/metrics")
			if name == "city" && i == leader {
				leaderText = text
			}
			for _, line := range strings.Split(string(text), "\n") {
				if line == "" || line[0] == '#' {
					continue
				}
				n := line
				if j := strings.IndexAny(n, "{ "); j >= 0 {
					n = n[:j]
				}
				exported[n] = true
			}
		}
	}

	var missing []string
	for where, expr := range exprs {
		for _, n := range metricName.FindAllString(expr, -1) {
			if exported[n] {
				continue
			}
			missing = append(missing, fmt.Sprintf("%s in %s: %s", n, where, expr))
		}
	}
	sort.Strings(missing)
	for _, m := range missing {
		t.Errorf("not exported by any replica: %s", m)
	}

	if promtool := os.Getenv("CITYHUB_PROMTOOL"); promtool != "" {
		cmd := exec.Command(promtool, "check", "metrics")
		cmd.Stdin = bytes.NewReader(leaderText)
		if out, err := cmd.CombinedOutput(); err != nil {
			t.Errorf("promtool check metrics on the city leader's /metrics: %v\n%s", err, out)
		}
	} else {
		t.Log("CITYHUB_PROMTOOL not set: promtool check metrics skipped (scripts/check-deploy.sh sets it)")
	}
}

func get(t *testing.T, url string) []byte {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v", url, resp.StatusCode, err)
	}
	return b
}

// deployRoot stands in for a host's or a container's file system: the
// absolute paths the examples name (/etc/cityhub/…, /var/lib/cityhub/…)
// are made under a temporary directory, the files the examples mount are
// copied there, and every other file a configuration names exists: the
// password, and certificates and keys of a development CA for the group's
// name (what the examples' init steps make), which config.Validate reads.
type deployRoot struct {
	t    *testing.T
	root string
	// dev holds the CA, the group's certificate and its key.
	dev certs.Files
}

var absPath = regexp.MustCompile(`(/etc/cityhub|/var/lib/cityhub)(/[^\s"',}\]]*)?`)

// newDeployRoot makes a stand-in root whose certificates name group.
func newDeployRoot(t *testing.T, group string) *deployRoot {
	dir := t.TempDir()
	if err := certs.GenerateDev(dir, []string{group}, certs.DevOptions{}); err != nil {
		t.Fatal(err)
	}
	return &deployRoot{t: t, root: t.TempDir(), dev: certs.NodeFiles(dir, group)}
}

// place writes a configuration file at its path in the stand-in root, its
// absolute paths moved there and the files they name made.
func (d *deployRoot) place(path string, content []byte) string {
	d.t.Helper()
	text := string(content)
	for _, m := range absPath.FindAllString(text, -1) {
		p := filepath.Join(d.root, m)
		if _, err := os.Stat(p); err == nil {
			continue
		}
		switch from := ""; {
		case strings.HasSuffix(m, "password"):
			d.write(p, []byte("placeholder-password\n"))
		case strings.HasSuffix(m, ".pem"):
			switch {
			case filepath.Base(m) == "ca.pem":
				from = d.dev.CA
			case strings.HasSuffix(m, "-key.pem"):
				from = d.dev.Key
			default:
				from = d.dev.Cert
			}
			b, err := os.ReadFile(from)
			if err != nil {
				d.t.Fatal(err)
			}
			d.write(p, b)
		}
	}
	text = absPath.ReplaceAllStringFunc(text, func(m string) string { return filepath.Join(d.root, m) })
	dst := filepath.Join(d.root, path)
	d.write(dst, []byte(text))
	return dst
}

func (d *deployRoot) write(p string, b []byte) {
	d.t.Helper()
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		d.t.Fatal(err)
	}
	if err := os.WriteFile(p, b, 0o600); err != nil {
		d.t.Fatal(err)
	}
}

// load is config.Load with the environment env (CITYHUB_* keys, values
// with the root's paths).
func (d *deployRoot) load(path string, env map[string]string) config.Config {
	d.t.Helper()
	for k, v := range env {
		d.t.Setenv(k, absPath.ReplaceAllStringFunc(v, func(m string) string { return filepath.Join(d.root, m) }))
	}
	cfg, err := config.Load(path, nil)
	if err != nil {
		d.t.Fatalf("%s does not load: %v", path, err)
	}
	return cfg
}

// composeFile is what the test reads of a compose file.
type composeFile struct {
	Services map[string]struct {
		Image       string
		Command     []string
		Environment map[string]string
		Volumes     []string
	}
}

// TestComposeConfigsLoad: each cityhub service of the compose files, with
// its environment and the files it mounts, has a configuration cityhubd
// accepts, naming itself, its group and (in the federation) its node.
func TestComposeConfigsLoad(t *testing.T) {
	for _, file := range []string{"compose/tier-3.yaml", "compose/federation.yaml"} {
		var cf composeFile
		readYAML(t, file, &cf)
		nodes := 0
		for name, svc := range cf.Services {
			if len(svc.Command) != 2 || svc.Command[0] != "--config" {
				continue // init, password
			}
			nodes++
			t.Run(file+"/"+name, func(t *testing.T) {
				group := name
				if file == "compose/tier-3.yaml" {
					group = "320582"
				}
				d := newDeployRoot(t, group)
				// Mounted files first (the topology), then the configuration.
				var cfgPath string
				for _, v := range svc.Volumes {
					parts := strings.Split(v, ":")
					if !strings.HasPrefix(parts[0], "./") {
						continue
					}
					content, err := os.ReadFile(filepath.Join(filepath.Dir(file), parts[0]))
					if err != nil {
						t.Fatal(err)
					}
					p := d.place(parts[1], content)
					if parts[1] == svc.Command[1] {
						cfgPath = p
					}
				}
				if cfgPath == "" {
					t.Fatalf("%s mounts nothing at %s", name, svc.Command[1])
				}
				cfg := d.load(cfgPath, svc.Environment)
				if cfg.Federation.Enabled() {
					if cfg.Federation.Node != name || cfg.Group() != name {
						t.Errorf("service %s runs federation node %q (group %q)", name, cfg.Federation.Node, cfg.Group())
					}
				} else if cfg.Node.ID != name || cfg.Group() != "320582" {
					t.Errorf("service %s runs node %q of group %q", name, cfg.Node.ID, cfg.Group())
				}
				if cfg.Internal.Insecure || !cfg.TLS.Enabled() || cfg.Auth.Disabled {
					t.Errorf("service %s: internal insecure %v, API TLS %v, auth off %v", name, cfg.Internal.Insecure, cfg.TLS.Enabled(), cfg.Auth.Disabled)
				}
			})
		}
		if nodes < 3 {
			t.Errorf("%s: %d cityhubd services, want 3", file, nodes)
		}
	}
}

// TestKubernetesConfigLoads: the StatefulSet's pods, with the ConfigMap
// and the environment the StatefulSet gives them, load as the replicas
// the configuration's peers name.
func TestKubernetesConfigLoads(t *testing.T) {
	raw, err := os.ReadFile("kubernetes/tier.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var cfgYAML, advertise string
	kinds := map[string]bool{}
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	for {
		var doc map[string]any
		if err := dec.Decode(&doc); err == io.EOF {
			break
		} else if err != nil {
			t.Fatalf("kubernetes/tier.yaml: %v", err)
		}
		kind, _ := doc["kind"].(string)
		kinds[kind] = true
		switch kind {
		case "ConfigMap":
			cfgYAML, _ = doc["data"].(map[string]any)["cityhubd.yaml"].(string)
		case "StatefulSet":
			spec := doc["spec"].(map[string]any)["template"].(map[string]any)["spec"].(map[string]any)
			c := spec["containers"].([]any)[0].(map[string]any)
			for _, e := range c["env"].([]any) {
				e := e.(map[string]any)
				if e["name"] == "CITYHUB_RAFT_ADVERTISE" {
					advertise = e["value"].(string)
				}
			}
			if p := c["readinessProbe"].(map[string]any)["httpGet"].(map[string]any)["path"]; p != "/readyz" {
				t.Errorf("readiness probe on %v, want /readyz", p)
			}
		}
	}
	for _, k := range []string{"ConfigMap", "Service", "StatefulSet", "PodDisruptionBudget"} {
		if !kinds[k] {
			t.Errorf("kubernetes/tier.yaml has no %s", k)
		}
	}
	if cfgYAML == "" || advertise == "" {
		t.Fatalf("no cityhubd.yaml in the ConfigMap (%d bytes) or no CITYHUB_RAFT_ADVERTISE (%q)", len(cfgYAML), advertise)
	}
	for i := range 3 {
		pod := fmt.Sprintf("d-320582-%d", i)
		t.Run(pod, func(t *testing.T) {
			d := newDeployRoot(t, "320582")
			p := d.place("/etc/cityhub/cityhubd.yaml", []byte(cfgYAML))
			cfg := d.load(p, map[string]string{"CITYHUB_NODE_ID": pod, "CITYHUB_RAFT_ADVERTISE": strings.ReplaceAll(advertise, "$(CITYHUB_NODE_ID)", pod)})
			if cfg.Node.ID != pod || cfg.Group() != "320582" || cfg.Internal.Insecure {
				t.Errorf("pod %s: node %q, group %q, internal insecure %v", pod, cfg.Node.ID, cfg.Group(), cfg.Internal.Insecure)
			}
		})
	}
}

// TestSystemdExampleLoads: the example node configuration, with what the
// unit sets (CITYHUB_NODE_ID=%i, CITYHUB_NODE_DATA_DIR=%S/cityhub/%i) and
// the environment file, loads.
func TestSystemdExampleLoads(t *testing.T) {
	unit, err := os.ReadFile("systemd/cityhubd@.service")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ProtectSystem=strict", "NoNewPrivileges=yes", "User=cityhub", "StateDirectory=cityhub/%i", "ReadWritePaths=", "EnvironmentFile="} {
		if !bytes.Contains(unit, []byte(want)) {
			t.Errorf("the unit lacks %s", want)
		}
	}
	d := newDeployRoot(t, "320582")
	content, err := os.ReadFile("systemd/node.yaml")
	if err != nil {
		t.Fatal(err)
	}
	p := d.place("/etc/cityhub/d-320582-1.yaml", content)
	env := map[string]string{"CITYHUB_NODE_ID": "d-320582-1", "CITYHUB_NODE_DATA_DIR": "/var/lib/cityhub/d-320582-1"}
	envFile, err := os.ReadFile("systemd/cityhubd.env")
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(envFile), "\n") {
		if k, v, ok := strings.Cut(strings.TrimSpace(line), "="); ok && !strings.HasPrefix(k, "#") {
			env[k] = v
		}
	}
	cfg := d.load(p, env)
	if cfg.Node.ID != "d-320582-1" || !strings.HasSuffix(cfg.Node.DataDir, "/var/lib/cityhub/d-320582-1") || cfg.Log.Format != "json" {
		t.Errorf("node %q, data %q, log format %q", cfg.Node.ID, cfg.Node.DataDir, cfg.Log.Format)
	}
}
