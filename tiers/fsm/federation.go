package fsm

import (
	"errors"
	"fmt"
	"sync/atomic"

	"github.com/cityhub/cityhub/federation/protocol"
	"github.com/cityhub/cityhub/federation/topology"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
	"github.com/cityhub/cityhub/tiers/workflow"
)

var (
	// ErrNotHolder refuses an action on a case that another node holds;
	// the error is a *NotHolderError naming the holder.
	ErrNotHolder = errors.New("case is held by another node")
	// ErrNoParent refuses a transfer up at the root of the federation (or
	// outside any federation).
	ErrNoParent = errors.New("node has no parent to transfer to")
	// ErrNotFederated refuses a federation command on a node that has no
	// topology.
	ErrNotFederated = errors.New("node is not part of a federation")
	// ErrBadTopology refuses a topology that does not validate.
	ErrBadTopology = errors.New("bad federation topology")
	// ErrUnitNotBelow refuses a dispatch to a unit hosted by a node that is
	// not this node or one of its descendants.
	ErrUnitNotBelow = errors.New("unit is not hosted at or below this node")
	// ErrNothingBelow refuses a hand-down (下派) of a case whose unit no
	// node below this one hosts. It is a workflow refusal (the case is not
	// in a state to hand down here).
	ErrNothingBelow = fmt.Errorf("%w: no node below hosts the case's unit", workflow.ErrForbidden)
)

// NotHolderError says which node holds a case.
type NotHolderError struct {
	CaseID, Holder string
}

func (e *NotHolderError) Error() string {
	return fmt.Sprintf("case %s is held by node %q: act there (this node keeps a read-only mirror)", e.CaseID, e.Holder)
}

func (e *NotHolderError) Unwrap() error { return ErrNotHolder }

// fedCache keeps the parsed topology of the stored record, so routing does
// not read and parse it for every entry. It is read from the store once
// (after open or a restore) and replaced when a SetTopology applies; only
// the goroutine that applies entries touches it (raft serialises Apply and
// Restore). A failed transaction stops the node, so the cache can never
// hold a topology the store did not commit.
//
// shared publishes the same view to the leader's Precheck, which runs on
// other goroutines: nil until the view is loaded (and after a reset).
type fedCache struct {
	loaded bool
	view   *fedView
	shared atomic.Pointer[sharedView]

	// The restore record (restore.go), cached and published the same way.
	rsLoaded bool
	rs       *pb.RestoreState
	sharedRS atomic.Pointer[sharedRestore]
}

// sharedView holds a loaded view; its view is nil outside a federation.
type sharedView struct{ view *fedView }

// set records the loaded view and publishes it.
func (fc *fedCache) set(v *fedView) {
	fc.loaded, fc.view = true, v
	fc.shared.Store(&sharedView{view: v})
}

// current is the view for a reader outside Apply: the one Apply last
// published, or, before Apply loaded one, the topology tx holds (parsed
// for this call alone, never published).
func (fc *fedCache) current(tx *store.Tx) (*fedView, error) {
	if sv := fc.shared.Load(); sv != nil {
		return sv.view, nil
	}
	return loadFedView(tx)
}

// fedView is the federation as the state machine sees it. A nil *fedView
// means the node is not federated: its cases have no holder and no link.
type fedView struct {
	topo *topology.Topology
	self string
}

func (fc *fedCache) load(tx *store.Tx) (*fedView, error) {
	if fc.loaded {
		return fc.view, nil
	}
	v, err := loadFedView(tx)
	if err != nil {
		return nil, err
	}
	fc.set(v)
	return v, nil
}

// loadFedView reads and parses the stored topology (nil: not federated).
func loadFedView(tx *store.Tx) (*fedView, error) {
	p, err := tx.Topology()
	switch {
	case errors.Is(err, store.ErrNotFound):
		return nil, nil
	case err != nil:
		return nil, err
	}
	t, self, err := topology.FromProto(p)
	if err != nil {
		// setTopology stores only valid topologies.
		return nil, fmt.Errorf("stored topology: %w", err)
	}
	return &fedView{topo: t, self: self}, nil
}

// reset forgets the cached topology (the store was replaced).
func (fc *fedCache) reset() {
	fc.loaded, fc.view = false, nil
	fc.shared.Store(nil)
	fc.rsLoaded, fc.rs = false, nil
	fc.sharedRS.Store(nil)
}

func (fv *fedView) selfName() string {
	if fv == nil {
		return ""
	}
	return fv.self
}

// checkHolder refuses an action at a node that does not hold the case.
func (fv *fedView) checkHolder(c *pb.Case) error {
	if c.GetHolder() == "" || c.GetHolder() == fv.selfName() {
		return nil
	}
	return &NotHolderError{CaseID: c.GetId(), Holder: c.GetHolder()}
}

// route moves the holder after an action that hands the case on: a
// dispatch to a unit hosted by a descendant (down the tree), or a transfer
// up to the parent. Other actions keep the holder.
func (fv *fedView) route(c *pb.Case, a *pb.CaseAction) error {
	switch a.Action {
	case pb.Action_ACTION_TRANSFER_UP:
		if fv == nil {
			return fmt.Errorf("%w: this node is not part of a federation", ErrNoParent)
		}
		self, _ := fv.topo.Node(fv.self)
		if self.Parent == "" {
			return fmt.Errorf("%w: %s is the root of the federation", ErrNoParent, fv.self)
		}
		c.Holder, c.HolderEpoch = self.Parent, c.HolderEpoch+1
	case pb.Action_ACTION_REFER_REVIEW:
		// The joint review queue is the city's: the case goes to the root.
		if fv == nil {
			return nil
		}
		if root := fv.topo.Root(); root.Name != fv.self {
			c.Holder, c.HolderEpoch = root.Name, c.HolderEpoch+1
		}
	case pb.Action_ACTION_DISPATCH, pb.Action_ACTION_REASSIGN, pb.Action_ACTION_DECIDE_OWNER:
		if fv == nil {
			return nil
		}
		host, ok := fv.topo.NodeOfUnit(a.Unit)
		if !ok {
			return nil // a unit outside the topology is handled here (非联网单位)
		}
		if c.OwnerTier == pb.Tier_TIER_UNSPECIFIED {
			c.OwnerTier = pb.Tier(host.Tier)
		}
		if host.Name == fv.self {
			return nil
		}
		if _, up, err := fv.topo.Route(fv.self, host.Name); err != nil || up {
			return &workflow.FieldError{Field: "unit", Reason: fmt.Sprintf(
				"unit %q is hosted by node %q, which is not below %q: transfer the case up instead", a.Unit, host.Name, fv.self),
				Err: ErrUnitNotBelow}
		}
		c.Holder, c.HolderEpoch = host.Name, c.HolderEpoch+1
	case pb.Action_ACTION_HAND_DOWN:
		// The unit the case has is hosted below: the case goes down to it
		// as it is. Anything else is not a hand-down.
		if fv == nil {
			return fmt.Errorf("%w: case %s: a hand-down needs a node below", ErrNotFederated, c.GetId())
		}
		host, ok := fv.topo.NodeOfUnit(c.GetOwnerUnit())
		if ok && host.Name != fv.self {
			_, up, err := fv.topo.Route(fv.self, host.Name)
			ok = err == nil && !up
		} else {
			ok = false
		}
		if !ok {
			return fmt.Errorf("%w: case %s is dispatched to unit %q, which no node below %s hosts: nothing to hand down to",
				ErrNothingBelow, c.GetId(), c.GetOwnerUnit(), fv.self)
		}
		c.Holder, c.HolderEpoch = host.Name, c.HolderEpoch+1
	}
	return nil
}

// emit queues version c (made at origin, received from neighbour from, ""
// when made here) on every link it must travel, in this transaction.
func (fv *fedView) emit(tx *store.Tx, from, origin string, c *pb.Case, atMs int64) error {
	if fv == nil {
		return nil
	}
	for _, hop := range protocol.NextHops(fv.topo, fv.self, from, c) {
		if _, err := tx.Enqueue(hop, &pb.LinkEntry{Case: c, Origin: origin, EnqueuedUnixMs: atMs}); err != nil {
			return err
		}
	}
	return nil
}

func setTopology(tx *store.Tx, st *pb.SetTopology, fc *fedCache) (*Result, error) {
	t, self, err := topology.FromProto(st.GetTopology())
	if err != nil {
		return &Result{Err: fmt.Errorf("%w: %w", ErrBadTopology, err)}, nil
	}
	if err := tx.PutTopology(st.Topology); err != nil {
		return nil, err
	}
	fc.set(&fedView{topo: t, self: self})
	return &Result{}, nil
}

// deliver applies a batch received on the link from d.From: entries at or
// below the link's high-water mark were applied before and are skipped; a
// gap ends the batch (the sender resends from the mark it gets back). Each
// new entry replaces the node's copy only when it is newer, and travels on.
//
// Before the entries, the mark may move (federation/DESIGN.md, "After a
// restore"): to the sender's floor when the sender's incarnation is new
// (it was restored and numbers its outbox again from its backup), or up to
// the floor when the sender asks to advance a mark below it (this node
// lost entries that are trimmed there). Result.Jumped counts the entries
// the mark passed over without applying them; anti-entropy repairs their
// cases.
func deliver(tx *store.Tx, cmd *pb.Command, d *pb.DeliverEntries, fv *fedView) (*Result, error) {
	if fv == nil {
		return &Result{Err: ErrNotFederated}, nil
	}
	if !fv.topo.IsNeighbour(fv.self, d.From) {
		return &Result{Err: fmt.Errorf("%w: %q is not a neighbour of %q", ErrBadCommand, d.From, fv.self)}, nil
	}
	hw, inc, err := tx.InLink(d.From)
	if err != nil {
		return nil, err
	}
	res := &Result{}
	switch {
	case d.Incarnation != 0 && d.Incarnation != inc:
		// A new life of the sender: its entries above its floor are new
		// (those this node applied before are not newer and change
		// nothing); what lies between a mark below the floor and the
		// floor is lost on this link.
		if d.Floor > hw {
			res.Jumped = d.Floor - hw
		}
		hw, inc = d.Floor, d.Incarnation
		res.Reset = true
	case d.Advance && d.Floor > hw:
		res.Jumped = d.Floor - hw
		hw = d.Floor
	}
	for _, e := range d.Entries {
		if e.Seq <= hw {
			continue
		}
		if e.Seq != hw+1 {
			break
		}
		hw = e.Seq
		applied, err := applyEntry(tx, d.From, e, fv, cmd.StampedUnixMs, cmd.LocalOffsetS)
		if err != nil {
			return nil, err
		}
		if !applied {
			res.Skipped++
		}
	}
	res.HighWater = hw
	return res, tx.SetInLink(d.From, hw, inc)
}

func applyEntry(tx *store.Tx, from string, e *pb.LinkEntry, fv *fedView, atMs int64, offsetS int32) (bool, error) {
	c := e.GetCase()
	if c == nil || !validIDPart(c.Id) || len(c.GetGridCode()) > maxKeyField || len(c.GetOwnerUnit()) > maxKeyField {
		return false, nil // malformed: can never apply; the link moves on
	}
	old, err := tx.GetCase(c.Id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		old = nil
	case err != nil:
		return false, err
	}
	if !protocol.Newer(c, old) {
		return false, nil
	}
	c.AllowedActions = nil
	if err := putCase(tx, old, c, offsetS); err != nil {
		return false, err
	}
	if err := bumpOwnSeq(tx, c, fv); err != nil {
		return false, err
	}
	// The next link's lag counts from when this node queued the entry.
	return true, fv.emit(tx, from, e.Origin, c, atMs)
}
