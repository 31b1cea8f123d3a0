package store_test

import (
	"testing"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

func BenchmarkPutCase(b *testing.B) {
	s := openMem(b)
	tmpl := mkCase("", pb.State_STATE_DISPATCHED, "unit-a", "110105001001001", t0+60*minute)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		i++
		c := clone(tmpl)
		c.Id = caseID("110105", i)
		if err := s.Update(func(tx *store.Tx) error { return tx.PutCase(nil, c) }); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkGetCase(b *testing.B) {
	s := openMem(b)
	const n = 10_000
	cs := make([]*pb.Case, n)
	for i := range cs {
		cs[i] = mkCase(caseID("110105", i+1), pb.State_STATE_DISPATCHED, "unit-a", "110105001001001", t0+60*minute)
	}
	putCases(b, s, cs)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		id := cs[(i*7919)%n].Id
		i++
		if _, err := s.GetCase(id); err != nil {
			b.Fatal(err)
		}
	}
}
