package store_test

import (
	"fmt"
	"syscall"
	"testing"

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
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	defer func() {
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
		b.ReportMetric(float64(cpu)/1e3/float64(b.N), "cpu-µs/op")
	}()
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
	var ru0, ru1 syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru0)
	defer func() {
		_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru1)
		cpu := ru1.Utime.Nano() + ru1.Stime.Nano() - ru0.Utime.Nano() - ru0.Stime.Nano()
		b.ReportMetric(float64(cpu)/1e3/float64(b.N*batch), "cpu-µs/report")
	}()
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
