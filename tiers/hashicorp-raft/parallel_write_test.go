// Copyright (c) HashiCorp, Inc.
// SPDX-License-Identifier: MPL-2.0

// cityhub: tests of the leader's write in parallel with replication
// (dispatchLogs, LogCache.cacheLogs).

package raft

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"
)

// gatedStore is an InmemStore whose next StoreLogs, once armed, waits for
// release and then fails with fail, or stores.
type gatedStore struct {
	*InmemStore
	mu      sync.Mutex
	armed   bool
	entered chan struct{}
	release chan struct{}
	once    *sync.Once
	fail    error
}

// open lets the armed write go on (once; again is a no-op).
func (g *gatedStore) open() {
	g.mu.Lock()
	once, release := g.once, g.release
	g.mu.Unlock()
	if once != nil {
		once.Do(func() { close(release) })
	}
}

func (g *gatedStore) arm(fail error) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.armed, g.fail = true, fail
	g.entered, g.release, g.once = make(chan struct{}), make(chan struct{}), new(sync.Once)
}

func (g *gatedStore) StoreLogs(logs []*Log) error {
	g.mu.Lock()
	armed, fail, entered, release := g.armed, g.fail, g.entered, g.release
	g.armed = false
	g.mu.Unlock()
	if armed {
		close(entered)
		<-release
		if fail != nil {
			return fail
		}
	}
	return g.InmemStore.StoreLogs(logs)
}

func (g *gatedStore) StoreLog(l *Log) error { return g.StoreLogs([]*Log{l}) }

type gatedCluster struct {
	rafts  []*Raft
	stores []*gatedStore
	fsms   []*MockFSM
}

func makeGatedCluster(t *testing.T) *gatedCluster {
	t.Helper()
	c := &gatedCluster{}
	var trans []*InmemTransport
	var configuration Configuration
	for i := 0; i < 3; i++ {
		addr, tr := NewInmemTransport("")
		trans = append(trans, tr)
		configuration.Servers = append(configuration.Servers, Server{
			Suffrage: Voter, ID: ServerID(fmt.Sprintf("server-%d", i)), Address: addr,
		})
	}
	for _, a := range trans {
		for _, b := range trans {
			a.Connect(b.LocalAddr(), b)
		}
	}
	for i := 0; i < 3; i++ {
		store := &gatedStore{InmemStore: NewInmemStore()}
		logs, err := NewLogCache(16, store)
		if err != nil {
			t.Fatal(err)
		}
		conf := inmemConfig(t)
		conf.LocalID = configuration.Servers[i].ID
		snaps := NewInmemSnapshotStore()
		if err := BootstrapCluster(conf, logs, store, snaps, trans[i], configuration); err != nil {
			t.Fatal(err)
		}
		fsm := &MockFSM{}
		r, err := NewRaft(conf, fsm, logs, store, snaps, trans[i])
		if err != nil {
			t.Fatal(err)
		}
		c.rafts, c.stores, c.fsms = append(c.rafts, r), append(c.stores, store), append(c.fsms, fsm)
	}
	t.Cleanup(func() {
		for _, s := range c.stores { // a failed test must not leave a write waiting
			s.open()
		}
		for _, r := range c.rafts {
			_ = r.Shutdown().Error()
		}
	})
	return c
}

// leader waits for a leader and returns its position.
func (c *gatedCluster) leader(t *testing.T) int {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		for i, r := range c.rafts {
			if r.State() == Leader {
				return i
			}
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatal("no leader within 30s")
	return -1
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (c *gatedCluster) applied(i int) [][]byte {
	f := c.fsms[i]
	f.Lock()
	defer f.Unlock()
	return append([][]byte(nil), f.logs...)
}

// The followers receive and store an entry while the leader's own write of
// it has not finished, and it commits once that write does.
func TestLeaderWritesInParallelWithReplication(t *testing.T) {
	c := makeGatedCluster(t)
	l := c.leader(t)
	if err := c.rafts[l].Apply([]byte("first"), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	c.stores[l].arm(nil)
	f := c.rafts[l].Apply([]byte("second"), 10*time.Second)
	<-c.stores[l].entered
	// The leader's store holds every entry before the one it now writes.
	want, err := c.stores[l].InmemStore.LastIndex()
	if err != nil {
		t.Fatal(err)
	}
	want++
	for _, i := range []int{(l + 1) % 3, (l + 2) % 3} {
		waitFor(t, fmt.Sprintf("follower %d to store index %d while the leader writes it", i, want), func() bool {
			n, _ := c.stores[i].LastIndex()
			return n >= want
		})
	}
	if n, _ := c.stores[l].InmemStore.LastIndex(); n >= want {
		t.Fatalf("leader's store already holds index %d", n)
	}
	c.stores[l].open()
	if err := f.Error(); err != nil {
		t.Fatal(err)
	}
	for i := range c.rafts {
		waitFor(t, fmt.Sprintf("server %d to apply both entries", i), func() bool {
			a := c.applied(i)
			return len(a) == 2 && bytes.Equal(a[1], []byte("second"))
		})
	}
}

// A leader whose own write fails steps down; the cluster goes on under a
// new leader, and every server applies the same entries.
func TestLeaderWriteFailureStepsDown(t *testing.T) {
	c := makeGatedCluster(t)
	l := c.leader(t)
	if err := c.rafts[l].Apply([]byte("first"), 5*time.Second).Error(); err != nil {
		t.Fatal(err)
	}
	disk := errors.New("disk failed")
	c.stores[l].arm(disk)
	f := c.rafts[l].Apply([]byte("lost?"), 10*time.Second)
	<-c.stores[l].entered
	c.stores[l].open()
	if err := f.Error(); err == nil || !strings.Contains(err.Error(), disk.Error()) {
		t.Fatalf("Apply: %v, want the disk error", err)
	}
	waitFor(t, "the old leader to step down", func() bool { return c.rafts[l].State() != Leader })
	var nl int
	waitFor(t, "a leader that can commit", func() bool {
		nl = c.leader(t)
		return c.rafts[nl].Apply([]byte("third"), time.Second).Error() == nil
	})
	for i := range c.rafts {
		waitFor(t, fmt.Sprintf("server %d to apply the new leader's entry", i), func() bool {
			a := c.applied(i)
			return len(a) > 0 && bytes.Equal(a[len(a)-1], []byte("third"))
		})
	}
	ref := c.applied(nl)
	for i := range c.rafts {
		a := c.applied(i)
		if len(a) != len(ref) {
			t.Fatalf("server %d applied %d entries, leader %d applied %d", i, len(a), nl, len(ref))
		}
		for j := range a {
			if !bytes.Equal(a[j], ref[j]) {
				t.Fatalf("server %d entry %d = %q, leader's = %q", i, j, a[j], ref[j])
			}
		}
	}
}

// When a follower's pipeline has every request answered, the leader sends
// it a new batch from its own goroutine before writing the batch itself
// (sendInline), and every server still applies the same entries.
func TestLeaderSendsNewEntriesInline(t *testing.T) {
	c := makeGatedCluster(t)
	l := c.leader(t)
	r := c.rafts[l]
	n := 0
	// The replicators pipeline after a first append succeeds; from then on
	// an entry applied alone finds both pipelines answered, unless a send
	// of the replicator's own (the commit index, every commit timeout) is
	// still out.
	waitFor(t, "an entry sent inline to both followers", func() bool {
		before := r.inlineSends.Load()
		n++
		if err := r.Apply([]byte(fmt.Sprintf("entry-%d", n)), 5*time.Second).Error(); err != nil {
			t.Fatal(err)
		}
		return r.inlineSends.Load() >= before+2
	})
	for i := range c.rafts {
		waitFor(t, fmt.Sprintf("server %d to apply %d entries", i, n), func() bool {
			return len(c.applied(i)) == n
		})
	}
	want := c.applied(l)
	for i := range c.rafts {
		got := c.applied(i)
		for k := range want {
			if string(got[k]) != string(want[k]) {
				t.Fatalf("server %d applied %q at %d, the leader %q", i, got[k], k, want[k])
			}
		}
	}
}
