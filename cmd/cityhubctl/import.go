package main

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strconv"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/legacy"
)

// maxImportBatch is the server's limit of rows per ImportCases request.
const maxImportBatch = 1000

// maxBatchBytes keeps a request well below gRPC's 4 MB message limit
// (long descriptions).
const maxBatchBytes = 2 << 20

// importSummary is what `cityhubctl import` reports (-o json prints it).
type importSummary struct {
	File        string          `json:"file"`
	Format      legacy.Format   `json:"format"`
	DryRun      bool            `json:"dry_run"`
	Rows        int             `json:"rows"`
	Imported    int             `json:"imported"`
	Already     int             `json:"already"`
	Quarantined int             `json:"quarantined"`
	Quarantine  string          `json:"quarantine_file,omitempty"`
	Bad         []*pb.RowError  `json:"-"`
	BadJSON     []importBadJSON `json:"quarantined_rows"`
}

type importBadJSON struct {
	Line     int32  `json:"line"`
	LegacyID string `json:"legacy_id"`
	Field    string `json:"field"`
	Reason   string `json:"reason"`
}

// importCmd is `cityhubctl import`: load an old district system's export.
func (a *app) importCmd() *cobra.Command {
	var (
		format, quarantine, actor string
		batch                     int
		dryRun, strict            bool
	)
	c := &cobra.Command{
		Use:   "import FILE",
		Short: "Import an old district system's export of cases (CSV or JSON lines) into this node",
		Long: `Import loads the backlog of an old district system: a CSV file with a header
line (columns by name, in any order, UTF-8 with or without BOM) or JSON
lines (one object per line, the same keys), with the columns

  legacy_id, reported_at, source, kind, major, minor, grid_code,
  component_id, lat, lng, address, description, status, dispatched_unit,
  deadline

(component_id, lat, lng, address, dispatched_unit and deadline may be
left out). An unknown or missing column refuses the whole file.

The file is read here; the node validates every row (class catalogue,
jurisdiction, time zone, statuses: see tiers/legacy) and writes the good
ones. A row is never half imported: a bad one, or a line that cannot be
read, goes to the quarantine file with its line number, field and reason,
and nothing of it is written. The legacy_id is the idempotency key:
importing the same file again changes nothing (its rows are counted as
already imported), and a row whose legacy_id an earlier row of the file
carries is quarantined. Rows go in batches (--batch rows, at most 1000,
and about 2 MB); each batch's request id is "import/" and the SHA-256 of
its rows and the actor, so a batch sent again is a replay.

The quarantine file (--quarantine, default FILE.quarantine.csv) is CSV:
line, legacy_id, field, reason, then the row's other columns. Correct the
rows in it and import it as it stands (the line, field and reason columns
are ignored). It is written only when there are bad rows; a run without
any removes a quarantine file left at that path by an earlier run (never a
file that is not one). --dry-run validates on the node and writes the
quarantine file, but imports nothing.

Output: a summary (rows, imported, already imported, quarantined); -o json
also lists the quarantined rows. Exit status 0 when the file was processed,
whatever the bad rows (friendly to cron: read the summary); with --strict,
1 when any row was quarantined. 1 also when a call or the file failed
(batches sent before stay imported: run again), 2 for a usage error.`,
		Example: `  cityhubctl --addr 127.0.0.1:7102 import testdata/city/legacy/d-320505.csv
  cityhubctl import export-12319.jsonl --actor 数据迁移组 --quarantine /var/lib/cityhub/bad.csv
  cityhubctl import old.txt --format csv --dry-run
  cityhubctl -o json import d-320505.csv --strict`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("import needs exactly one FILE, got %d arguments", len(args))
			}
			return nil
		},
		RunE: a.runE(func(ctx context.Context, _ *cobra.Command, args []string) error {
			path := args[0]
			if batch < 1 || batch > maxImportBatch {
				return usagef("--batch %d: between 1 and %d", batch, maxImportBatch)
			}
			f, err := importFormat(path, format)
			if err != nil {
				return err
			}
			if quarantine == "" {
				quarantine = path + ".quarantine.csv"
			}
			sum, err := a.importFile(ctx, path, f, quarantine, actor, batch, dryRun)
			if err != nil {
				return err
			}
			if err := a.writeImportSummary(sum); err != nil {
				return err
			}
			if strict && sum.Quarantined > 0 {
				return fmt.Errorf("%d of %d rows quarantined (--strict): see %s", sum.Quarantined, sum.Rows, sum.Quarantine)
			}
			return nil
		}),
	}
	fl := c.Flags()
	fl.StringVar(&format, "format", "", "csv or jsonl (default: from the file's extension)")
	fl.StringVar(&quarantine, "quarantine", "", "where bad rows go (default FILE.quarantine.csv)")
	fl.IntVar(&batch, "batch", 500, "rows per request (at most 1000)")
	fl.BoolVar(&dryRun, "dry-run", false, "validate on the node and write the quarantine file, import nothing")
	fl.StringVar(&actor, "actor", legacy.DefaultActor, "who imports: recorded in each imported case's history")
	fl.BoolVar(&strict, "strict", false, "exit 1 when any row was quarantined")
	return c
}

func importFormat(path, given string) (legacy.Format, error) {
	if given != "" {
		f, err := legacy.ParseFormat(given)
		if err != nil {
			return "", usagef("--format: %v", err)
		}
		return f, nil
	}
	f, err := legacy.FormatOf(path)
	if err != nil {
		return "", usagef("%v with --format csv|jsonl", err)
	}
	return f, nil
}

// importFile reads the file, sends its rows in batches and writes (or
// clears) the quarantine file.
func (a *app) importFile(ctx context.Context, path string, format legacy.Format, quarantine, actor string, batch int, dryRun bool) (*importSummary, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	parsed, err := legacy.Parse(fh, format)
	fh.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	rows, bad := legacy.Duplicates(parsed.Rows)
	bad = append(parsed.Bad, bad...)
	sum := &importSummary{File: path, Format: format, DryRun: dryRun, Rows: len(parsed.Rows) + len(parsed.Bad)}

	byLine := map[int32]*pb.LegacyRow{}
	for _, r := range rows {
		byLine[r.Line] = r
	}
	if len(rows) > 0 {
		conn, err := a.dial()
		if err != nil {
			return nil, err
		}
		cl := pb.NewOwnershipServiceClient(conn)
		batches := splitBatches(rows, batch, maxBatchBytes)
		nBatches := len(batches)
		for i, part := range batches {
			req := &pb.ImportCasesRequest{RequestId: importRequestID(actor, part), Rows: part, DryRun: dryRun, Actor: actor}
			cctx, cancel := a.call(ctx)
			resp, err := cl.ImportCases(cctx, req)
			cancel()
			if err != nil {
				if i > 0 && !dryRun {
					fmt.Fprintf(a.stderr, "batch %d of %d failed; the %d batches before it are imported: run again (rows imported are skipped)\n", i+1, nBatches, i)
				}
				return nil, err
			}
			sum.Imported += int(resp.Imported)
			sum.Already += int(resp.Already)
			for _, e := range resp.Rejected {
				bad = append(bad, legacy.Bad{Err: e, Row: byLine[e.Line]})
			}
		}
	}

	sum.Quarantined = len(bad)
	if len(bad) > 0 {
		var buf bytes.Buffer
		if err := legacy.WriteQuarantine(&buf, bad); err != nil {
			return nil, err
		}
		if err := os.WriteFile(quarantine, buf.Bytes(), 0o644); err != nil {
			return nil, fmt.Errorf("quarantine file: %w", err)
		}
		sum.Quarantine = quarantine
		slices.SortStableFunc(bad, func(x, y legacy.Bad) int { return int(x.Err.GetLine()) - int(y.Err.GetLine()) })
		for _, b := range bad {
			sum.Bad = append(sum.Bad, b.Err)
		}
	} else if err := removeStaleQuarantine(quarantine); err != nil {
		return nil, err
	}
	for _, e := range sum.Bad {
		sum.BadJSON = append(sum.BadJSON, importBadJSON{Line: e.Line, LegacyID: e.LegacyId, Field: e.Field, Reason: e.Reason})
	}
	return sum, nil
}

// splitBatches cuts rows into batches of at most n rows and about maxBytes
// (a row larger than that goes alone). The cut depends only on the rows, so
// the same file gives the same batches.
func splitBatches(rows []*pb.LegacyRow, n, maxBytes int) [][]*pb.LegacyRow {
	var (
		out   [][]*pb.LegacyRow
		start int
		size  int
	)
	for i, r := range rows {
		rs := proto.Size(r)
		if i > start && (i-start == n || size+rs > maxBytes) {
			out = append(out, rows[start:i])
			start, size = i, 0
		}
		size += rs
	}
	if start < len(rows) {
		out = append(out, rows[start:])
	}
	return out
}

// removeStaleQuarantine removes a quarantine file an earlier run left at
// path, and nothing else.
func removeStaleQuarantine(path string) error {
	fh, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	ours := legacy.IsQuarantine(fh)
	fh.Close()
	if !ours {
		return nil
	}
	return os.Remove(path)
}

// importRequestID names a batch by its content (and the importer), not by
// the file's name or the batch's place: the same rows sent again are a
// replay.
func importRequestID(actor string, rows []*pb.LegacyRow) string {
	h := sha256.New()
	field := func(h hash.Hash, s string) {
		h.Write([]byte(strconv.Itoa(len(s))))
		h.Write([]byte{':'})
		h.Write([]byte(s))
	}
	field(h, actor)
	for _, r := range rows {
		for _, v := range legacy.Values(r) {
			field(h, v)
		}
	}
	return "import/" + hex.EncodeToString(h.Sum(nil))
}

func (a *app) writeImportSummary(s *importSummary) error {
	if a.output == "json" {
		b, err := json.MarshalIndent(s, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(a.stdout, "%s\n", b)
		return err
	}
	tw := newTable(a.stdout)
	title := "import"
	if s.DryRun {
		title = "import (dry run: nothing written)"
	}
	row(tw, title, fmt.Sprintf("%s (%s)", filepath.Base(s.File), s.Format))
	row(tw, "rows", strconv.Itoa(s.Rows))
	row(tw, "imported", strconv.Itoa(s.Imported))
	row(tw, "already imported", strconv.Itoa(s.Already))
	q := strconv.Itoa(s.Quarantined)
	if s.Quarantine != "" {
		q += " → " + s.Quarantine
	}
	row(tw, "quarantined", q)
	if err := tw.Flush(); err != nil {
		return err
	}
	return writeBadRows(a.stdout, s.Bad)
}

// writeBadRows lists the first quarantined rows.
func writeBadRows(w io.Writer, bad []*pb.RowError) error {
	const show = 20
	for i, e := range bad {
		if i == show {
			_, err := fmt.Fprintf(w, "  … and %d more in the quarantine file\n", len(bad)-show)
			return err
		}
		id := e.LegacyId
		if id == "" {
			id = "-"
		}
		if _, err := fmt.Fprintf(w, "  line %d %s: %s: %s\n", e.Line, id, e.Field, e.Reason); err != nil {
			return err
		}
	}
	return nil
}
