package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/spf13/cobra"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/evidence"
)

var evidenceStages = &nameTable[pb.EvidenceStage]{what: "stage", prefix: "EVIDENCE_STAGE_", entries: []nameEntry[pb.EvidenceStage]{
	{"report", pb.EvidenceStage_EVIDENCE_STAGE_REPORT, []string{"上报"}},
	{"handling", pb.EvidenceStage_EVIDENCE_STAGE_HANDLING, []string{"处置"}},
	{"check", pb.EvidenceStage_EVIDENCE_STAGE_CHECK, []string{"核查"}},
}}

var evidenceKinds = &nameTable[pb.EvidenceKind]{what: "kind", prefix: "EVIDENCE_KIND_", entries: []nameEntry[pb.EvidenceKind]{
	{"before", pb.EvidenceKind_EVIDENCE_KIND_BEFORE, []string{"处置前"}},
	{"after", pb.EvidenceKind_EVIDENCE_KIND_AFTER, []string{"处置后"}},
	{"other", pb.EvidenceKind_EVIDENCE_KIND_OTHER, []string{"其他"}},
}}

func (a *app) evidenceCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "evidence",
		Short: "Upload, list and fetch the photos and files of a case (证据照片)",
	}
	c.AddCommand(a.evidenceUploadCmd(), a.evidenceListCmd(), a.evidenceGetCmd())
	return c
}

func (a *app) evidenceClient() (pb.EvidenceServiceClient, error) {
	conn, err := a.dial()
	if err != nil {
		return nil, err
	}
	return pb.NewEvidenceServiceClient(conn), nil
}

func (a *app) evidenceUploadCmd() *cobra.Command {
	var (
		h                  pb.UploadEvidenceHeader
		stage, kind, reqID string
	)
	c := &cobra.Command{
		Use:   "upload CASE_ID FILE",
		Short: "Attach a photo or file to a case (FILE - reads standard input)",
		Example: `  cityhubctl evidence upload 320505-20261203-000001 before.jpg --stage report --kind before
  cityhubctl evidence upload 320505-20261203-000001 after.jpg --stage handling --kind after`,
		Args: cobra.ExactArgs(2),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			var err error
			if h.Stage, err = evidenceStages.parse(stage); err != nil {
				return err
			}
			if h.Kind, err = parseOptional(evidenceKinds, kind); err != nil {
				return err
			}
			if h.RequestId, err = a.requestID(reqID); err != nil {
				return err
			}
			h.CaseId = args[0]
			var in io.Reader = a.stdin
			if args[1] != "-" {
				f, err := os.Open(args[1])
				if err != nil {
					return usagef("%v", err)
				}
				defer f.Close()
				if st, err := f.Stat(); err == nil {
					h.Size = st.Size()
				}
				if h.FileName == "" {
					h.FileName = baseName(args[1])
				}
				in = f
			}
			cl, err := a.evidenceClient()
			if err != nil {
				return err
			}
			ctx, cancel := a.call(ctx)
			defer cancel()
			resp, err := evidence.UploadStream(ctx, cl, &h, in)
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, resp)
			}
			if resp.Replayed {
				fmt.Fprintln(a.stderr, "already attached (重复上传): nothing changed")
			}
			return a.writeEvidence([]*pb.EvidenceRef{resp.Evidence})
		}),
	}
	f := c.Flags()
	f.StringVar(&stage, "stage", "", "when it was taken: "+evidenceStages.help())
	f.StringVar(&kind, "kind", "", "what it shows: "+evidenceKinds.help())
	f.StringVar(&h.FileName, "name", "", "file name to record (default: FILE's)")
	f.StringVar(&h.Note, "note", "", "a note")
	f.StringVar(&reqID, "request-id", "", "idempotency key (default: a fresh random one, printed to stderr): give the same one to retry")
	_ = c.MarkFlagRequired("stage")
	return c
}

func baseName(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' || p[i] == '\\' {
			return p[i+1:]
		}
	}
	return p
}

func (a *app) evidenceListCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "list CASE_ID",
		Short: "List a case's photos and files",
		Args:  cobra.ExactArgs(1),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			cl, err := a.evidenceClient()
			if err != nil {
				return err
			}
			ctx, cancel := a.call(ctx)
			defer cancel()
			resp, err := cl.ListEvidence(ctx, &pb.ListEvidenceRequest{CaseId: args[0]})
			if err != nil {
				return err
			}
			if a.output == "json" {
				return writeJSON(a.stdout, resp)
			}
			return a.writeEvidence(resp.Evidence)
		}),
	}
}

func (a *app) evidenceGetCmd() *cobra.Command {
	var out string
	c := &cobra.Command{
		Use:   "get CASE_ID SHA256",
		Short: "Fetch a photo or file (from this node, or through the federation from the node that keeps it)",
		Example: `  cityhubctl evidence get 320505-20261203-000001 9f86d0… --to before.jpg
  cityhubctl evidence get 320505-20261203-000001 9f86d0… --to - | display`,
		Args: cobra.ExactArgs(2),
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			if out == "" {
				return usagef("give --to FILE (or --to - for standard output)")
			}
			cl, err := a.evidenceClient()
			if err != nil {
				return err
			}
			ctx, cancel := a.call(ctx)
			defer cancel()
			var w io.Writer = a.stdout
			var f *os.File
			if out != "-" {
				if f, err = os.CreateTemp(dirOf(out), ".evidence-*"); err != nil {
					return err
				}
				defer os.Remove(f.Name())
				w = f
			}
			ref, err := evidence.Download(ctx, cl, args[0], args[1], w)
			if err != nil {
				if f != nil {
					f.Close()
				}
				return err
			}
			if f != nil {
				if err := f.Close(); err != nil {
					return err
				}
				if err := os.Rename(f.Name(), out); err != nil {
					return err
				}
				fmt.Fprintf(a.stderr, "%s: %s, %d bytes\n", out, ref.ContentType, ref.Size)
			}
			return nil
		}),
	}
	c.Flags().StringVar(&out, "to", "", "file to write it to (- for standard output)")
	return c
}

func dirOf(p string) string {
	for i := len(p) - 1; i >= 0; i-- {
		if p[i] == '/' {
			return p[:i+1]
		}
	}
	return "."
}

// writeEvidence prints references as a table (a time in the local zone,
// EXIF when the photo had it).
func (a *app) writeEvidence(refs []*pb.EvidenceRef) error {
	tw := newTable(a.stdout)
	fmt.Fprintln(tw, "SHA256\tSTAGE\tKIND\tTYPE\tBYTES\tUPLOADED\tBY\tNODE\tTAKEN\tPLACE\tNAME")
	for _, r := range refs {
		uploaded, taken, place := "-", "-", "-"
		if r.UploadedAt != nil {
			uploaded = r.UploadedAt.AsTime().In(time.Local).Format("2006-01-02 15:04")
		}
		if r.GetExif().GetTakenAt() != nil {
			taken = r.Exif.TakenAt.AsTime().In(time.Local).Format("2006-01-02 15:04")
		}
		if r.GetExif().GetHasPosition() {
			place = fmt.Sprintf("%.5f,%.5f", r.Exif.Lat, r.Exif.Lng)
		}
		node := r.Node
		if node == "" {
			node = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Sha256, evidenceStages.name(r.Stage), evidenceKinds.name(r.Kind),
			r.ContentType, r.Size, uploaded, r.UploadedBy, node, taken, place, r.FileName)
	}
	return tw.Flush()
}
