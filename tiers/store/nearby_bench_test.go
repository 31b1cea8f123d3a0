package store_test

import (
	"fmt"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// BenchmarkNearbyOpen: one duplicate look-up in a tier whose last 72 h
// hold 60,000 reports over 240 grids and 10 classes (25 a grid and class).
//
//	go test -run '^$' -bench NearbyOpen ./tiers/store/
func BenchmarkNearbyOpen(b *testing.B) {
	s := openMem(b)
	const grids, classes, n = 240, 10, 60_000
	cs := make([]*pb.Case, n)
	for i := range cs {
		c := mkCase(caseID("320582", i+1), pb.State_STATE_REPORTED, "", fmt.Sprintf("320582101001%03d", i%grids), 0)
		c.MinorCode = fmt.Sprintf("%02d", (i/grids)%classes)
		c.ReportedAt = ts(t0 + int64(i)*4)
		cs[i] = c
	}
	putCases(b, s, cs)
	k := store.NearbyClass{Grid: "320582101001007", Kind: pb.Kind_KIND_EVENT, Major: "01", Minor: "03"}
	since := time.UnixMilli(t0 - 72*60*minute)
	b.ReportAllocs()
	for b.Loop() {
		seen := 0
		if err := s.NearbyOpen(k, since, func(store.NearbyEntry) bool { seen++; return true }); err != nil || seen != n/grids/classes {
			b.Fatalf("saw %d, %v", seen, err)
		}
	}
}
