package node

import (
	"io"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/hashicorp/raft"
)

// A heartbeat in its handler when the node shuts down ends before
// closeHeartbeats returns (so before the stores close), and a heartbeat
// after it never reaches the handler.
func TestGatedTransportHeartbeatsEndBeforeTheStoresClose(t *testing.T) {
	server, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	gt := &gatedTransport{NetworkTransport: server}
	defer gt.Close()
	client, err := raft.NewTCPTransport("127.0.0.1:0", nil, 2, 10*time.Second, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()

	entered, release := make(chan struct{}), make(chan struct{})
	var handled atomic.Int32
	var finished atomic.Bool
	gt.SetHeartbeatHandler(func(rpc raft.RPC) {
		if handled.Add(1) == 1 {
			close(entered)
			<-release
			finished.Store(true)
		}
		rpc.Respond(&raft.AppendEntriesResponse{Term: 1, Success: true}, nil)
	})
	heartbeat := func() error {
		var resp raft.AppendEntriesResponse
		req := &raft.AppendEntriesRequest{RPCHeader: raft.RPCHeader{Addr: []byte(client.LocalAddr())}, Term: 1}
		return client.AppendEntries("s", gt.LocalAddr(), req, &resp)
	}
	first := make(chan error, 1)
	go func() { first <- heartbeat() }()
	select {
	case <-entered:
	case <-time.After(time.Minute):
		t.Fatal("the heartbeat did not reach its handler in a minute")
	}

	closed := make(chan bool, 1)
	go func() {
		gt.closeHeartbeats()
		closed <- finished.Load()
	}()
	// A writer waiting for the gate makes every later reader wait: once
	// TryRLock fails, closeHeartbeats is waiting for the handler.
	deadline := time.Now().Add(time.Minute)
	for gt.mu.TryRLock() {
		gt.mu.RUnlock()
		if time.Now().After(deadline) {
			t.Fatal("closeHeartbeats did not wait for the heartbeat in its handler")
		}
		runtime.Gosched()
	}
	close(release)
	if !<-closed {
		t.Fatal("closeHeartbeats returned before the heartbeat in its handler ended")
	}
	if err := <-first; err != nil {
		t.Fatalf("the heartbeat in flight: %v", err)
	}
	if err := heartbeat(); err == nil {
		t.Fatal("a heartbeat after closeHeartbeats was answered")
	}
	if n := handled.Load(); n != 1 {
		t.Fatalf("the handler ran %d times, want 1", n)
	}
}
