package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica"
)

// demo is a running federation: every replica of every node, and a gRPC
// client of each.
type demo struct {
	lay    *layout
	groups map[string][]*replica.Replica     // by node name
	cases  map[string][]pb.CaseServiceClient // by node name, one per replica
	conns  []*grpc.ClientConn
	byNode map[string][]*grpc.ClientConn // the same connections by node name, one per replica
	// ids are the accounts and keys the connections' calls are made as.
	ids *identities
	// provisioned is how long making them took at start.
	provisioned time.Duration
}

func run(ctx context.Context, o options) error {
	if o.rate <= 0 {
		return fmt.Errorf("--rate %v: want a positive rate", o.rate)
	}
	if o.out == nil {
		o.out = io.Discard
	}
	if o.log == nil {
		o.log = io.Discard
	}
	if o.pace <= 0 {
		o.pace = 3 * time.Second
	}
	if o.statusEvery <= 0 {
		o.statusEvery = 5 * time.Second
	}
	logger := slog.New(slog.NewTextHandler(o.log, &slog.HandlerOptions{Level: slog.LevelWarn}))
	lay, err := newLayout(sampleTopology, o.dataDir, o.replicas, o.portBase, o.tls)
	if err != nil {
		return err
	}
	if err := lay.prepare(); err != nil {
		return err
	}
	started := time.Now()
	d, err := start(ctx, lay, logger)
	if d != nil {
		defer d.stop()
	}
	if err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(o.out, "stopped while starting")
			return nil
		}
		return err
	}
	up := time.Since(started)
	began := time.Now()
	if err := d.ids.provision(ctx); err != nil {
		if ctx.Err() != nil {
			fmt.Fprintln(o.out, "stopped while starting")
			return nil
		}
		return err
	}
	d.provisioned = time.Since(began)
	d.banner(o.out, o.rate, up)
	if !o.noBacklog {
		res, err := d.importBacklog(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			return err
		}
		res.print(o.out, ctlCommand(), d.lay.password, d.grpcAddr(backlogNode), d.grpcAddr(d.lay.nodes[0].node.Name))
	}

	// --duration counts from here: the generator runs that long (or until
	// stopWhen says it has done enough).
	ctx, stopGenerator := context.WithCancel(ctx)
	defer stopGenerator()
	if o.duration > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, o.duration)
		defer cancel()
	}
	sim := newSimulator(d, o.pace, logger)
	if n := sim.resume(); n > 0 {
		fmt.Fprintf(o.out, "The generator works on %d open cases already in the federation too (an earlier run's, the reconciled backlog).\n\n", n)
	}
	simDone := make(chan struct{})
	go func() { defer close(simDone); sim.run(ctx, o.rate) }()
	tick := time.NewTicker(o.statusEvery)
	defer tick.Stop()
	printed := time.Now()
	for running := true; running; {
		select {
		case <-ctx.Done():
			running = false
		case <-tick.C:
			d.printStatus(o.out, sim)
			printed = time.Now()
			if o.stopWhen != nil && o.stopWhen(sim) {
				stopGenerator()
				running = false
				printed = time.Time{} // the last status line shows where it stopped
			}
		}
	}
	<-simDone
	if time.Since(printed) > time.Second {
		d.printStatus(o.out, sim)
	}
	if o.beforeStop != nil {
		if err := o.beforeStop(d); err != nil {
			return err
		}
	}
	fmt.Fprintln(o.out, "stopping; the data stays in", o.dataDir)
	return nil
}

// start starts every replica (in parallel) and waits until each node has a
// leader and its topology applied. On error the demo it returns (if any)
// must still be stopped.
func start(ctx context.Context, lay *layout, logger *slog.Logger) (*demo, error) {
	d := &demo{lay: lay, groups: map[string][]*replica.Replica{}, cases: map[string][]pb.CaseServiceClient{}, byNode: map[string][]*grpc.ClientConn{}}
	ids, err := newIdentities(lay.dataDir, lay.password)
	if err != nil {
		return d, err
	}
	d.ids = ids
	var (
		mu   sync.Mutex
		wg   sync.WaitGroup
		errs []error
	)
	for _, n := range lay.nodes {
		d.groups[n.node.Name] = make([]*replica.Replica, len(n.cfgs))
	}
	for _, n := range lay.nodes {
		for i, cfg := range n.cfgs {
			wg.Add(1)
			go func() {
				defer wg.Done()
				r, err := replica.Start(ctx, cfg, replica.Options{Logger: logger, RaftLogLevel: slog.LevelError})
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, fmt.Errorf("start %s: %w", cfg.Node.ID, err))
					return
				}
				d.groups[n.node.Name][i] = r
			}()
		}
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return d, err
	}
	for _, n := range lay.nodes {
		for _, cfg := range n.cfgs {
			cc, err := grpc.NewClient(cfg.GRPC.Addr, grpc.WithTransportCredentials(insecure.NewCredentials()),
				grpc.WithUnaryInterceptor(d.ids.unary(n.node.Name)))
			if err != nil {
				return d, err
			}
			d.conns = append(d.conns, cc)
			d.byNode[n.node.Name] = append(d.byNode[n.node.Name], cc)
			d.cases[n.node.Name] = append(d.cases[n.node.Name], pb.NewCaseServiceClient(cc))
		}
		name := n.node.Name
		d.ids.addNode(n.node, gridPrefix(n.node), d.byNode[name][0], func() *replica.Replica { return d.leader(name) })
	}
	// Ready: a leader, and the topology in the state machine of every
	// replica (writes are refused until then).
	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	for _, n := range lay.nodes {
		for _, r := range d.groups[n.node.Name] {
			if _, err := r.Node.WaitForLeader(wctx); err != nil {
				return d, fmt.Errorf("%s: no leader: %w", r.Config.Node.ID, err)
			}
			for {
				if st, err := r.Node.Store().Topology(); err == nil && st != nil {
					break
				}
				select {
				case <-wctx.Done():
					return d, fmt.Errorf("%s: topology not applied: %w", r.Config.Node.ID, wctx.Err())
				case <-time.After(20 * time.Millisecond):
				}
			}
		}
	}
	return d, nil
}

// stop stops every replica, in parallel.
func (d *demo) stop() {
	for _, cc := range d.conns {
		cc.Close()
	}
	var wg sync.WaitGroup
	for _, g := range d.groups {
		for _, r := range g {
			if r == nil {
				continue
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				defer cancel()
				_ = r.Stop(ctx)
			}()
		}
	}
	wg.Wait()
}

// leader returns the replica of node name that leads (the first one when
// none does right now).
func (d *demo) leader(name string) *replica.Replica {
	g := d.groups[name]
	for _, r := range g {
		if r.Node.IsLeader() {
			return r
		}
	}
	return g[0]
}

// grpcAddr is the gRPC address of node's first replica.
func (d *demo) grpcAddr(node string) string {
	for _, n := range d.lay.nodes {
		if n.node.Name == node {
			return n.cfgs[0].GRPC.Addr
		}
	}
	return ""
}

// firstOf returns the first node of a tier (in tree order).
func (d *demo) firstOf(t topology.Tier) nodeLayout {
	for _, n := range d.lay.nodes {
		if n.node.Tier == t {
			return n
		}
	}
	return d.lay.nodes[0]
}

func (d *demo) banner(w io.Writer, rate float64, took time.Duration) {
	l := d.lay
	count := map[topology.Tier]int{}
	for _, n := range l.nodes {
		count[n.node.Tier]++
	}
	replicas := "1 replica each"
	if l.replicas > 1 {
		replicas = fmt.Sprintf("%d replicas each", l.replicas)
	}
	scheme := "node i (in tree order, the city is 1)"
	if l.replicas > 1 {
		scheme = fmt.Sprintf("replica r of node k (in tree order, the city is 1) is i = %d(k-1)+r", l.replicas)
	}
	fed := "plain text on loopback (--tls for mutual TLS)"
	if l.tls {
		fed = "mutual TLS, development certificates in " + l.certDir() + " (also between the replicas of a node: forwarding and raft)"
	}
	fmt.Fprintf(w, `cityhub demo: a federation of %d nodes (%d city, %d districts, %d streets, %d communities), %s, up in %.1fs
  topology    %s (the embedded testdata/city/federation.yaml)
  data        %s/<node>
  federation  %s
  ports       %s: raft %d+i, gRPC %d+i, REST %d+i, federation %d+i, internal %d+i

`, len(l.nodes), count[topology.City], count[topology.District], count[topology.Street], count[topology.Community], replicas, took.Seconds(),
		l.topologyPath(), l.dataDir, fed, scheme, l.base+raftBlock, l.base+grpcBlock, l.base+httpBlock, l.base+federationBlock, l.base+internalBlock)
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "  NODE\tTIER\tJURISDICTION\tREST\tGRPC\tFEDERATION")
	for _, n := range l.nodes {
		c := n.cfgs[0]
		rest, grpcAddr, fedAddr := c.HTTP.Addr, c.GRPC.Addr, c.Federation.Addr
		if len(n.cfgs) > 1 {
			last := n.cfgs[len(n.cfgs)-1]
			rest += fmt.Sprintf("-%s", port(last.HTTP.Addr))
			grpcAddr += fmt.Sprintf("-%s", port(last.GRPC.Addr))
			fedAddr += fmt.Sprintf("-%s", port(last.Federation.Addr))
		}
		fmt.Fprintf(tw, "  %s\t%s\t%s\t%s\t%s\t%s\n", n.node.Name, n.node.Tier, n.node.Jurisdiction, rest, grpcAddr, fedAddr)
	}
	tw.Flush()
	city, comm := l.nodes[0].cfgs[0], d.firstOf(topology.Community)
	ctl := ctlCommand()
	pw := d.lay.password
	fmt.Fprintf(w, `
Authentication is on: every API call but login needs "Authorization: Bearer <token or key>" (metrics, health and /openapi.json do not).
  password    %[1]s  for every demo account (made for this data directory, kept in %[2]s; demo only)
  accounts    at every node: admin (administrator), clerk (受理员), lead (值班长), disp (派遣员), insp (监督员), super (督办员), eval (考评员),
              and a seat per unit the node hosts, named by the unit id (e.g. city-water); a login is valid at its own node only
  keys        the city's 12345 hotline platform: %[3]s
              (every node's citizens' app and camera keys: %[4]s)
  identities  %[5]d accounts created, %[6]d there already, %[7]d keys made, in %.1[8]fs
`, pw, passwordFile(l.dataDir), orNone(d.ids.key(l.nodes[0].node.Name, "hotline-12345")), d.ids.keysPath,
		d.ids.created.Load(), d.ids.existed.Load(), d.ids.keysMade.Load(), d.provisioned.Seconds())
	d.consoleBanner(w)
	login := fmt.Sprintf(`login() { curl -s -X POST "$1/v1/auth/login" -d '{"username":"lead","password":"%s"}' | sed -E 's/.*"access_token": *"([^"]+)".*/\1/'; }`, pw)
	fmt.Fprintf(w, `
Where to look (the city mirrors every case of the federation; a node acts only on the cases it holds):
  %[10]s --addr %[4]s login --user lead --password-stdin <<< '%[7]s'   keeps the login (for that address) for the next commands
  %[10]s --addr %[4]s cases list --limit 10
  %[10]s --addr %[4]s federation status
  %[10]s --addr %[5]s login --user lead --password-stdin <<< '%[7]s'; %[10]s --addr %[5]s federation status   (%[3]s)
  %[8]s   # a shift leader's token from a node's REST API
  curl -s '%[1]s/v1/cases?page_size=5' -H "Authorization: Bearer $(login %[1]s)"     the city's cases: "holder" says which node holds each
  curl -s %[1]s/v1/federation/links -H "Authorization: Bearer $(login %[1]s)"        its links: queued, acknowledged, lag
  curl -s %[1]s/metrics | grep cityhub_link_       link lag and sequence metrics
  curl -s '%[2]s/v1/cases?page_size=5' -H "Authorization: Bearer $(login %[2]s)"     community %[3]s
  curl -s %[1]s/v1/auth/whoami -H "Authorization: Bearer %[9]s"   the 12345 hotline's key
Reporting about %.0[6]f cases a second at every tier and walking them to the end. Ctrl-C stops.

`, "http://"+city.HTTP.Addr, "http://"+comm.cfgs[0].HTTP.Addr, comm.node.Name, city.GRPC.Addr, comm.cfgs[0].GRPC.Addr, rate, pw, login,
		orNone(d.ids.key(l.nodes[0].node.Name, "hotline-12345")), ctl)
}

// consoleBanner prints where the web console is (every node serves it at
// /) and which demo accounts to open it with.
func (d *demo) consoleBanner(w io.Writer) {
	l := d.lay
	url := func(n nodeLayout, path string) string { return "http://" + n.cfgs[0].HTTP.Addr + path }
	city, dist, comm := l.nodes[0], d.firstOf(topology.District), d.firstOf(topology.Community)
	gridSeat, gridName := "", ""
	for _, u := range comm.node.Units {
		if gridSeat == "" || strings.HasSuffix(u.ID, "-grid") {
			gridSeat, gridName = unitAccount(u.ID), u.Name
		}
	}
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "\nWeb console (中文; every node serves it at /, from this process, no internet needed); log in with the password above:\n")
	fmt.Fprintf(tw, "  指挥大屏 %s\t%s\tlead (值班长) or super (督办员)\n", city.node.Name, url(city, "/screen"))
	fmt.Fprintf(tw, "  工作台 %s\t%s\tlead (值班长: 立案, 派遣, 结案), disp (派遣员), clerk (受理员: /intake 地图点选上报)\n", city.node.Name, url(city, "/seat"))
	fmt.Fprintf(tw, "  区级大屏/工作台 %s\t%s\tlead, disp (派遣员), eval (考评员: /evaluation)\n", dist.node.Name, url(dist, "/screen"))
	fmt.Fprintf(tw, "  会审 %s\t%s\tlead (值班长: 裁定责任单位)\n", city.node.Name, url(city, "/review"))
	fmt.Fprintf(tw, "  导入与对账 %s\t%s\tadmin (导入, 对账), lead (查看报告)\n", dist.node.Name, url(dist, "/reconcile"))
	fmt.Fprintf(tw, "  城管通 (phone) %s\t%s\t%s (%s), insp (监督员: 核实, 核查)\n", comm.node.Name, url(comm, "/m"), gridSeat, gridName)
	tw.Flush()
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

// gridPrefix is the prefix of the grid codes node takes reports for (a
// city takes every grid of its prefecture: the first 4 digits).
func gridPrefix(n topology.Node) string {
	if n.Tier == topology.City && len(n.Jurisdiction) >= 4 {
		return n.Jurisdiction[:4]
	}
	return n.Jurisdiction
}

func port(addr string) string {
	for i := len(addr) - 1; i >= 0; i-- {
		if addr[i] == ':' {
			return addr[i+1:]
		}
	}
	return addr
}
