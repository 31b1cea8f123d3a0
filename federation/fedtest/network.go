package fedtest

import (
	"context"
	"fmt"
	"net"
	"sync"
)

// Network stands between the federation links of an in-process federation:
// every connection a node's relay makes goes through it, so a test can cut
// the link between two nodes (both directions, open connections included)
// and heal it. Raft traffic inside a group does not pass through it.
type Network struct {
	mu       sync.Mutex
	addrNode map[string]string        // federation address -> node name
	cut      map[[2]string]bool       // sorted pair of node names
	conns    map[[2]string][]net.Conn // open connections per pair
	dialer   net.Dialer
}

func newNetwork() *Network {
	return &Network{addrNode: map[string]string{}, cut: map[[2]string]bool{}, conns: map[[2]string][]net.Conn{}}
}

func pair(a, b string) [2]string {
	if a > b {
		a, b = b, a
	}
	return [2]string{a, b}
}

// DialerFrom returns the dialer node src's relay uses.
func (n *Network) DialerFrom(src string) func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		n.mu.Lock()
		dst := n.addrNode[addr]
		p := pair(src, dst)
		cut := n.cut[p]
		n.mu.Unlock()
		if cut {
			return nil, fmt.Errorf("fedtest: link %s-%s is partitioned", src, dst)
		}
		c, err := n.dialer.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		n.mu.Lock()
		defer n.mu.Unlock()
		if n.cut[p] {
			c.Close()
			return nil, fmt.Errorf("fedtest: link %s-%s is partitioned", src, dst)
		}
		n.conns[p] = append(n.conns[p], c)
		return c, nil
	}
}

// Partition cuts the link between nodes a and b: open connections close and
// new ones are refused until Heal.
func (n *Network) Partition(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	p := pair(a, b)
	n.cut[p] = true
	for _, c := range n.conns[p] {
		c.Close()
	}
	n.conns[p] = nil
}

// Heal restores the link between a and b.
func (n *Network) Heal(a, b string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	delete(n.cut, pair(a, b))
}
