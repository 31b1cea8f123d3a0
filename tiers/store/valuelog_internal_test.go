package store

import (
	"fmt"
	"testing"

	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// TestCasesLiveInTheValueLog: a case's value goes to badger's value log
// (the LSM holds a pointer) and reads back whole through a reopen, the
// value log's collection runs beside writes, and after Close it does
// nothing.
func TestCasesLiveInTheValueLog(t *testing.T) {
	dir := t.TempDir()
	s := openNearTest(t, dir)
	c := memCase(1, pb.State_STATE_REPORTED)
	c.Description = fmt.Sprintf("%0300d", 7) // over valueThreshold with the rest
	if err := s.Update(func(tx *Tx) error { return tx.PutCase(nil, c) }); err != nil {
		t.Fatal(err)
	}
	b, err := proto.MarshalOptions{Deterministic: true}.Marshal(c)
	if err != nil {
		t.Fatal(err)
	}
	if len(b) < valueThreshold {
		t.Fatalf("the case is %d bytes, under the threshold %d", len(b), valueThreshold)
	}
	if got := s.db.Opts().ValueThreshold; got != valueThreshold {
		t.Fatalf("badger's value threshold %d, want %d", got, valueThreshold)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 20 {
			s.RunGC()
		}
	}()
	for i := 2; i < 200; i++ {
		next := proto.Clone(c).(*pb.Case)
		next.Version = uint64(i)
		if err := s.Update(func(tx *Tx) error { return tx.PutCase(c, next) }); err != nil {
			t.Fatal(err)
		}
		c = next
	}
	<-done
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s.RunGC() // closed: nothing, no panic
	s = openNearTest(t, dir)
	defer s.Close()
	got, err := s.GetCase(c.Id)
	if err != nil {
		t.Fatal(err)
	}
	if !proto.Equal(got, c) {
		t.Fatalf("after a reopen: %v, want %v", got, c)
	}
}
