package fedtest

import (
	"context"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/replica"
)

// logRecorder keeps the messages logged at Info and above.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (h *logRecorder) Enabled(_ context.Context, l slog.Level) bool { return l >= slog.LevelInfo }
func (h *logRecorder) Handle(_ context.Context, r slog.Record) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.msgs = append(h.msgs, r.Level.String()+" "+r.Message)
	return nil
}
func (h *logRecorder) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h *logRecorder) WithGroup(string) slog.Handler      { return h }

func (h *logRecorder) count(prefix string) int {
	h.mu.Lock()
	defer h.mu.Unlock()
	n := 0
	for _, m := range h.msgs {
		if strings.HasPrefix(m, prefix) {
			n++
		}
	}
	return n
}

// TestSampleTopologyTakesNoSampleData: nodes of the sample city's topology
// whose configuration names no responsibility catalogue and no grid layer
// take none (they used to fall back to the sample city's): each says so at
// start, a report records no owner, and owner lookups, reconciliation and
// locating a point are refused (FailedPrecondition) naming what is missing.
func TestSampleTopologyTakesNoSampleData(t *testing.T) {
	f := New(t, SampleSpecs(t), 1)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	// The district's replica again, with its start logged.
	d := f.Groups["d-320505"]
	h := &logRecorder{}
	d.Stop(0)
	if err := d.StartWith(0, func(o *replica.Options) { o.Logger = slog.New(h) }); err != nil {
		t.Fatal(err)
	}
	d.WaitLeader(20 * time.Second)
	if n := h.count("WARN no responsibility catalogue configured"); n != 1 {
		t.Errorf("logged the missing catalogue %d times at start, want one warning: %q", n, h.msgs)
	}
	if n := h.count("INFO no grid geometry configured"); n != 1 {
		t.Errorf("logged the missing geometry %d times at start, want once: %q", n, h.msgs)
	}

	c := report(ctx, t, f.Client("d-320505"), "no-sample-1", "320505001001005")
	if c.GetOwnership() != nil {
		t.Errorf("a report recorded an owner without a catalogue: %+v", c.GetOwnership())
	}
	own := pb.NewOwnershipServiceClient(d.Conn(0))
	_, err := own.ResolveOwner(ctx, &pb.ResolveOwnerRequest{Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "320505001001005"})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "ownership.rules") {
		t.Errorf("ResolveOwner: %v, want FailedPrecondition naming ownership.rules", err)
	}
	_, err = own.Reconcile(ctx, &pb.ReconcileRequest{DryRun: true})
	if status.Code(err) != codes.FailedPrecondition {
		t.Errorf("Reconcile: %v, want FailedPrecondition", err)
	}
	_, err = pb.NewGeoServiceClient(d.Conn(0)).Locate(ctx, &pb.LocateRequest{Lat: 31.3, Lng: 120.6})
	if st := status.Convert(err); st.Code() != codes.FailedPrecondition || !strings.Contains(st.Message(), "geo.grids") {
		t.Errorf("Locate: %v, want FailedPrecondition naming geo.grids", err)
	}
}
