package export

import (
	"encoding/csv"
	"io"
	"strconv"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
)

// WriteReconcileCSV writes a reconciliation report's counts as CSV: one row
// per dimension and key, then a total row.
func WriteReconcileCSV(w io.Writer, rep *pb.ReconcileReport) error {
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"run_id", "dimension", "key", "moved", "pending", "disputed", "rejected", "failed"})
	n := func(v int64) string { return strconv.FormatInt(v, 10) }
	for _, c := range rep.GetCounts() {
		_ = cw.Write([]string{rep.GetRunId(), c.GetDimension(), c.GetKey(), n(c.GetMoved()), n(c.GetPending()), n(c.GetDisputed()), n(c.GetRejected()), n(c.GetFailed())})
	}
	_ = cw.Write([]string{rep.GetRunId(), "total", "", n(rep.GetMoved()), n(rep.GetPending()), n(rep.GetDisputed()), n(rep.GetRejected()), n(rep.GetFailed())})
	cw.Flush()
	return cw.Error()
}
