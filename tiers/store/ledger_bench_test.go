package store_test

import (
	"fmt"
	"runtime"
	"runtime/metrics"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/store"
)

// BenchmarkApplyReport is the store's part of applying one report: the
// request id looked up, a sequence taken, the case and its request record
// written with the applied index, one transaction per report.
func BenchmarkApplyReport(b *testing.B) {
	s := openMem(b)
	tmpl := mkCase("", pb.State_STATE_REPORTED, "unit-a", "110105001001001", t0+60*minute)
	i := 0
	defer cpuPer(b, 1, "cpu-µs/op")()
	for b.Loop() {
		i++
		if err := s.Update(func(tx *store.Tx) error {
			rid := fmt.Sprintf("req-%d", i)
			if _, err := tx.GetRequest(rid); err == nil {
				return fmt.Errorf("exists")
			}
			seq, err := tx.NextSeq("110105", "20260501")
			if err != nil {
				return err
			}
			c := clone(tmpl)
			c.Id = caseID("110105", int(seq))
			if err := tx.PutCase(nil, c); err != nil {
				return err
			}
			if err := tx.PutRequest(rid, &pb.RequestRecord{CaseId: c.Id, Version: 1}); err != nil {
				return err
			}
			return tx.SetApplied(uint64(i), 1)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyReportBatch is BenchmarkApplyReport with 32 reports per
// transaction, as the FSM applies a full batch of log entries: keys
// several reports touch (counters, the sequence) are read from the
// transaction's own writes and committed once.
func BenchmarkApplyReportBatch(b *testing.B) {
	s := openMem(b)
	tmpl := mkCase("", pb.State_STATE_REPORTED, "unit-a", "110105001001001", t0+60*minute)
	const batch = 32
	i := 0
	defer cpuPer(b, batch, "cpu-µs/report")()
	for b.Loop() {
		if err := s.Update(func(tx *store.Tx) error {
			for range batch {
				i++
				rid := fmt.Sprintf("req-%d", i)
				if _, err := tx.GetRequest(rid); err == nil {
					return fmt.Errorf("exists")
				}
				seq, err := tx.NextSeq("110105", "20260501")
				if err != nil {
					return err
				}
				c := clone(tmpl)
				c.Id = caseID("110105", int(seq))
				if err := tx.PutCase(nil, c); err != nil {
					return err
				}
				if err := tx.PutRequest(rid, &pb.RequestRecord{CaseId: c.Id, Version: 1}); err != nil {
					return err
				}
			}
			return tx.SetApplied(uint64(i), 1)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkApplyReportBatchStored is BenchmarkApplyReportBatch on a store
// that already holds 200,000 cases over 5,000 grids, each report in a
// grid of its own drawn at random, as a city's reports come: the entries
// a report adds to the grid and nearby indexes land in random places of a
// big in-memory tree, where every transaction copies the nodes it
// changes (copy-on-write).
//
// It also reports the in-memory tree's key comparisons a report
// (cmp/report): each one away from the last write reads an entry elsewhere
// in the heap, so they are the tree's share of the cost in a count that
// does not depend on the machine.
func BenchmarkApplyReportBatchStored(b *testing.B) {
	var compares atomic.Int64
	defer store.CountMemCompares(&compares)()
	s := openMem(b)
	const (
		stored = 200_000
		grids  = 5_000
		batch  = 32
	)
	tmpl := mkCase("", pb.State_STATE_REPORTED, "unit-a", "", t0+60*minute)
	fillStored(b, s, stored, grids)
	i := stored
	applied := uint64(i)
	defer cpuPer(b, batch, "cpu-µs/report")()
	defer gcPer(b, batch, "gc-µs/report")()
	b.ReportAllocs()
	compares.Store(0)
	defer func() { b.ReportMetric(float64(compares.Load())/float64(b.N*batch), "cmp/report") }()
	for b.Loop() {
		if err := s.Update(func(tx *store.Tx) error {
			for range batch {
				i++
				c := clone(tmpl)
				c.Id, c.GridCode = caseID("110105", i), benchGrid(i*104729, grids)
				if err := tx.PutCase(nil, c); err != nil {
					return err
				}
				if err := tx.PutRequest(fmt.Sprintf("req-%d", i), &pb.RequestRecord{CaseId: c.Id, Version: 1}); err != nil {
					return err
				}
			}
			applied++
			return tx.SetApplied(applied, 1)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkCollectorCycleStored is one full cycle of Go's garbage
// collector over a store of 1,000,000 cases (the ms a cycle took on one
// core, and the heap's objects): what every cycle of a replica holding
// them pays, however few cases it writes (BENCHMARKS.md, "The index
// entries' bytes in blocks").
func BenchmarkCollectorCycleStored(b *testing.B) {
	collectorStore(b)
	collectorCycles(b)
}

// collectorGrids is the grids the collector benchmarks' store spreads its
// 1,000,000 cases over.
const collectorGrids = 5_000

// collectorStore is the store of the collector benchmarks: 1,000,000
// reported cases over collectorGrids grids.
func collectorStore(b *testing.B) *store.Store {
	s := openMem(b)
	fillStored(b, s, 1_000_000, collectorGrids)
	return s
}

// BenchmarkCollectorCycleStoredLeader is BenchmarkCollectorCycleStored
// on a leader: each grid's class has been looked up for duplicates, so
// the store also holds its nearby list (5,000 of them).
func BenchmarkCollectorCycleStoredLeader(b *testing.B) {
	s := collectorStore(b)
	for g := range collectorGrids {
		k := store.NearbyClass{Grid: benchGrid(g, collectorGrids), Kind: pb.Kind_KIND_EVENT, Major: "01", Minor: "02"}
		seen := 0
		if err := s.NearbyOpen(k, time.UnixMilli(0), func(store.NearbyEntry) bool { seen++; return seen < 64 }); err != nil || seen == 0 {
			b.Fatalf("grid %d: %d open cases, %v", g, seen, err)
		}
	}
	collectorCycles(b)
}

// collectorCycles runs b.N full cycles of the collector on one core and
// reports what one took, and the heap.
func collectorCycles(b *testing.B) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(1))
	runtime.GC()
	b.ResetTimer()
	for b.Loop() {
		runtime.GC()
	}
	b.StopTimer()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.ReportMetric(float64(b.Elapsed().Milliseconds())/float64(b.N), "ms/cycle")
	b.ReportMetric(float64(ms.HeapObjects), "objects")
	b.ReportMetric(float64(ms.HeapAlloc>>20), "heap-MB")
}

// fillStored writes cases 1 to n, reported, over grids grids in an order
// the grid and nearby indexes see as random, 1,000 a transaction.
func fillStored(b *testing.B, s *store.Store, n, grids int) {
	tmpl := mkCase("", pb.State_STATE_REPORTED, "unit-a", "", t0+60*minute)
	for i := 0; i < n; {
		if err := s.Update(func(tx *store.Tx) error {
			for range min(1000, n-i) {
				i++
				c := clone(tmpl)
				c.Id, c.GridCode = caseID("110104", i), benchGrid(i*7919, grids)
				if err := tx.PutCase(nil, c); err != nil {
					return err
				}
			}
			return tx.SetApplied(uint64(i), 1)
		}); err != nil {
			b.Fatal(err)
		}
	}
}

// benchGrid is the n-th of grids unit grids of district 110105.
func benchGrid(n, grids int) string { return fmt.Sprintf("110105%09d", n%grids) }

// gcPer starts counting the CPU time the garbage collector took (the
// runtime's estimate, runtime/metrics); the function it returns reports
// it in µs per b.N × per under unit (defer it).
func gcPer(b *testing.B, per int, unit string) func() {
	read := func() float64 {
		s := []metrics.Sample{{Name: "/cpu/classes/gc/total:cpu-seconds"}}
		metrics.Read(s)
		return s[0].Value.Float64()
	}
	gc0 := read()
	return func() { b.ReportMetric((read()-gc0)*1e6/float64(b.N*per), unit) }
}

// cpuPer starts counting this process's CPU time; the function it returns
// reports it in µs per b.N × per under unit (defer it).
func cpuPer(b *testing.B, per int, unit string) func() {
	var ru0 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	return func() {
		var ru1 syscall.Rusage
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
		b.ReportMetric(float64(cpu)/1e3/float64(b.N*per), unit)
	}
}
