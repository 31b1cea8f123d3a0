package main

import (
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"

	"github.com/spf13/cobra"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

func (a *app) federationCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "federation",
		Short: "Inspect the node's links to its parent and children",
	}
	c.AddCommand(a.federationStatusCmd())
	return c
}

func (a *app) federationStatusCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "status",
		Short: "Show the node's place in the federation and the lag of each link",
		Long: `Show the node's name, tier and parent in the federation topology and, for
each link to a neighbour, what this node queued toward it (QUEUED, the last
sequence number), what the neighbour acknowledged (ACKED), the entries
still unacknowledged (LAG) and the age of the oldest of them (LAG AGE), the
high-water mark of entries received from the neighbour (RECEIVED), whether
this replica relays the link (it leads) and the last delivery error.

Any replica answers from its own state; the leader's view is current.`,
		Example: `  cityhubctl federation status
  cityhubctl --addr 127.0.0.1:7104 -o json federation status`,
		Args: cobra.NoArgs,
		RunE: a.runE(showCluster(a, func(ctx context.Context, cl pb.ClusterServiceClient) (*pb.FederationStatusResponse, error) {
			return cl.FederationStatus(ctx, &pb.FederationStatusRequest{})
		}, writeFederationStatus)),
	}
}

// writeFederationStatus prints a node's place in the federation and a table
// of its links.
func writeFederationStatus(w io.Writer, st *pb.FederationStatusResponse) error {
	if st.GetNode() == "" {
		_, err := fmt.Fprintln(w, "not federated: this node stands alone (federation.topology is empty)")
		return err
	}
	tw := newTable(w)
	row(tw, "node:", st.GetNode())
	row(tw, "tier:", orDash(st.GetTier()))
	row(tw, "parent:", orDash(st.GetParent()))
	switch {
	case st.GetCatchingUp():
		row(tw, "restored:", "catching up: writes wait for anti-entropy with "+strings.Join(st.GetWaitingFor(), ", ")+" (恢复后核对中)")
	case st.GetIncarnation() != 0:
		row(tw, "restored:", "from a backup; incarnation "+strconv.FormatUint(st.GetIncarnation(), 10))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintln(w)
	if len(st.GetLinks()) == 0 {
		_, err := fmt.Fprintln(w, "no links")
		return err
	}
	tw = newTable(w)
	row(tw, "PEER", "DIRECTION", "QUEUED", "ACKED", "LAG", "LAG AGE", "RECEIVED", "RELAYING", "LAST ERROR")
	for _, l := range st.GetLinks() {
		relaying := "no"
		if l.GetRelaying() {
			relaying = "yes"
		}
		row(tw, l.GetPeer(), orDash(l.GetDirection()),
			strconv.FormatUint(l.GetOutLastSeq(), 10), strconv.FormatUint(l.GetOutAcked(), 10), strconv.FormatUint(l.GetLagEntries(), 10),
			fmt.Sprintf("%.1fs", l.GetLagSeconds()), strconv.FormatUint(l.GetInHighWater(), 10), relaying, orDash(oneLine(l.GetLastError())))
	}
	return tw.Flush()
}
