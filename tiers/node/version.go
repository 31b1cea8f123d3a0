package node

import (
	"fmt"

	"github.com/hashicorp/raft"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/fsm"
)

// versionGate refuses cmd when a member of the raft configuration has not
// registered a log version that applies it (fsm.RequiredVersion): during a
// rolling upgrade the leader may already run the new release while a
// follower still runs the old one, which would refuse the new command type
// and diverge. Commands of the base version pass without a look-up.
func (n *Node) versionGate(cmd *pb.Command) error {
	need := fsm.RequiredVersion(cmd)
	if need <= 1 {
		return nil
	}
	if need > n.logVersion() {
		return fmt.Errorf("%w: this replica's binary does not know the command (log version %d needed)", ErrUpgradeInProgress, need)
	}
	f := n.raft.GetConfiguration()
	if err := f.Error(); err != nil {
		return fmt.Errorf("raft configuration: %w", err)
	}
	versions, err := n.memberVersions()
	if err != nil {
		return err
	}
	return gate(need, f.Configuration().Servers, versions)
}

// logVersion is the log version this replica applies and registers.
func (n *Node) logVersion() uint32 {
	if n.cfg.LogVersion != 0 {
		return min(n.cfg.LogVersion, fsm.LogVersion)
	}
	return fsm.LogVersion
}

// gate is versionGate's decision: every member, voter or not (each applies
// the log), must have registered a version of at least need.
func gate(need uint32, members []raft.Server, versions map[string]uint32) error {
	for _, s := range members {
		if got := fsm.EffectiveVersion(versions[string(s.ID)]); got < need {
			return fmt.Errorf("%w: %s applies log version %d, the command needs %d", ErrUpgradeInProgress, s.ID, got, need)
		}
	}
	return nil
}

// memberVersions are the log versions the group's members registered
// (an unregistered member counts as 0: the base version). The leader
// asks for every entry of joined reports: they are read again only
// when a registration (or a restore) has changed them.
func (n *Node) memberVersions() (map[string]uint32, error) {
	gen := n.store.NodesGeneration() // before the read: a change after it reads them again
	if c := n.versions.Load(); c != nil && c.gen == gen {
		return c.byNode, nil
	}
	nodes, err := n.store.Nodes()
	if err != nil {
		return nil, fmt.Errorf("registered members: %w", err)
	}
	out := make(map[string]uint32, len(nodes))
	for _, ni := range nodes {
		out[ni.NodeId] = ni.LogVersion
	}
	n.versions.Store(&memberVersionsRead{gen: gen, byNode: out})
	return out, nil
}

// memberVersionsRead is what memberVersions read at a generation of the
// registered replicas (never changed once stored).
type memberVersionsRead struct {
	gen    uint64
	byNode map[string]uint32
}
