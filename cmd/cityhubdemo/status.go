package main

import (
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/workflow"
)

// tierStatus sums the nodes of one tier, read from each node's leader.
type tierStatus struct {
	nodes          int
	held, heldOpen int // cases this tier's nodes hold (and act on)
	mirrored       int // read-only copies of cases held elsewhere
	overdue        int // held cases past their stage deadline (督办)
	queued         uint64
	oldest         float64 // seconds, the oldest unacknowledged entry
	failing        int     // links whose last delivery failed
	readErr        error
}

var tiers = []topology.Tier{topology.City, topology.District, topology.Street, topology.Community}

// tierStatuses reads every node's store and links.
func (d *demo) tierStatuses() map[topology.Tier]*tierStatus {
	out := map[topology.Tier]*tierStatus{}
	for _, t := range tiers {
		out[t] = &tierStatus{}
	}
	for _, n := range d.lay.nodes {
		ts := out[n.node.Tier]
		ts.nodes++
		r := d.leader(n.node.Name)
		err := scanCases(r.Node.Store(), func(c *pb.Case) bool {
			if c.Holder == n.node.Name {
				ts.held++
				if c.Overdue && !workflow.IsTerminal(c.State) {
					ts.overdue++
				}
				if !workflow.IsTerminal(c.State) {
					ts.heldOpen++
				}
			} else {
				ts.mirrored++
			}
			return true
		})
		if err != nil {
			ts.readErr = err
		}
		st, err := r.FederationStatus()
		if err != nil {
			ts.readErr = err
			continue
		}
		for _, l := range st.GetLinks() {
			ts.queued += l.LagEntries
			ts.oldest = max(ts.oldest, l.LagSeconds)
			if l.LastError != "" {
				ts.failing++
			}
		}
	}
	return out
}

// printStatus prints one line per tier (cases held and mirrored, link lag)
// and one of the generator's flow.
func (d *demo) printStatus(w io.Writer, sim *simulator) {
	sts := d.tierStatuses()
	var b strings.Builder
	// The time with its zone, on the first line of the block.
	stamp := time.Now().Format("15:04:05 MST")
	pad := len(stamp)
	for _, t := range tiers {
		ts := sts[t]
		plural := "s"
		if ts.nodes == 1 {
			plural = " "
		}
		fmt.Fprintf(&b, "%-*s  %-9s %2d node%s  held %5d (%4d open, %3d overdue)  mirrored %5d  links: %4d queued, oldest %4.1fs",
			pad, stamp, t, ts.nodes, plural, ts.held, ts.heldOpen, ts.overdue, ts.mirrored, ts.queued, ts.oldest)
		if ts.failing > 0 {
			fmt.Fprintf(&b, ", %d failing", ts.failing)
		}
		if ts.readErr != nil {
			fmt.Fprintf(&b, " (read error: %v)", ts.readErr)
		}
		b.WriteByte('\n')
		stamp = ""
	}
	st := &sim.stats
	open, awaiting := sim.open()
	fmt.Fprintf(&b, "%-*s  flow: %d reported (city %d, districts %d, streets %d, communities %d) · %d handed down · %d transferred up (上交) · %d finished · %d open, %d awaiting a hand-off",
		pad, "", st.reported[topology.City].Load()+st.reported[topology.District].Load()+st.reported[topology.Street].Load()+st.reported[topology.Community].Load(),
		st.reported[topology.City].Load(), st.reported[topology.District].Load(), st.reported[topology.Street].Load(), st.reported[topology.Community].Load(),
		st.handedDown.Load(), st.transferredUp.Load(), st.finished.Load(), open, awaiting)
	if n := st.failed.Load(); n > 0 {
		fmt.Fprintf(&b, " · %d calls retried", n)
	}
	if n := st.dropped.Load(); n > 0 {
		fmt.Fprintf(&b, " · %d cases dropped", n)
	}
	if n, err := d.leader(d.lay.nodes[0].node.Name).Node.Store().CountInReview(); err == nil && n > 0 {
		fmt.Fprintf(&b, " · %d in the city's joint review queue", n)
	}
	b.WriteString("\n\n")
	io.WriteString(w, b.String())
}
