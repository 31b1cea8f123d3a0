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
	"strings"

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
	Encoding    legacy.Encoding `json:"encoding"`
	Detected    bool            `json:"encoding_detected"`
	Ignored     []string        `json:"ignored_columns"`
	Renamed     []legacy.Rename `json:"renamed_columns"`
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
		encoding, mapFile         string
		maps                      []string
		batch                     int
		dryRun, strict, progress  bool
	)
	c := &cobra.Command{
		Use:   "import FILE",
		Short: "Import an old district system's export of cases (CSV or JSON lines) into this node",
		Long: `Import loads the backlog of an old district system: a CSV file with a header
line (columns by name, in any order) or JSON lines (one object per line,
the same keys), with the columns

  legacy_id, reported_at, source, kind, major, minor, grid_code,
  component_id, lat, lng, address, description, status, dispatched_unit,
  deadline

(component_id, lat, lng, address, dispatched_unit and deadline may be
left out). Other columns (备注, 处理意见, 联系人…) are ignored and listed in
the summary; --strict refuses them. A missing required column, or two
columns for one, refuses the whole file. Columns named otherwise are read
with --map OLD=column[,OLD=column…] (repeatable) or --map-file FILE (YAML,
"OLD: column", for .yaml/.yml; else lines of OLD=column); the common
Chinese headers (案件编号, 上报时间, 问题描述, 单元网格, 处置单位…: see
tiers/legacy Aliases) are read without one.

Encodings: UTF-8 with or without a byte order mark, or GB18030 / GBK (what
Excel on Chinese Windows saves as CSV), detected: a file that is not valid
UTF-8 is GB18030 unless most of its non-ASCII lines are UTF-8. --encoding
utf-8|gb18030|gbk overrides. Each row is decoded alone: a row that is not
valid text in the encoding is quarantined with a reason naming it.

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

The quarantine file (--quarantine, default <base name of FILE>.quarantine.csv
in the current directory, not next to FILE; the summary gives its full
path) is CSV, UTF-8 with a BOM:
line, legacy_id, field, reason, then the row's other columns. Correct the
rows in it and import it as it stands (the line, field and reason columns
are ignored). It is written only when there are bad rows; a run without
any removes a quarantine file left at that path by an earlier run (never a
file that is not one). --dry-run validates on the node and writes the
quarantine file, but imports nothing.

Output: a summary (rows, encoding, ignored and renamed columns, imported,
already imported, quarantined) on stdout; -o json also lists the
quarantined rows. Progress (rows sent of all, rows/s, time left) goes to
stderr when it is a terminal, or with --progress (--progress=false: never).
Exit status 0 when the file was processed, whatever the bad rows (friendly
to cron: read the summary); with --strict, 1 when any row was quarantined,
and 1 before anything is sent when the file has columns that are not
cityhub's (they are named). 1 also when a call or the file failed
(batches sent before stay imported: run again), 2 for a usage error.`,
		Example: `  cityhubctl --addr 127.0.0.1:7102 import testdata/city/legacy/d-320505.csv
  cityhubctl import export-12319.jsonl --actor 数据迁移组 --quarantine /var/lib/cityhub/bad.csv
  cityhubctl import old.txt --format csv --dry-run
  cityhubctl import 案件导出.csv --encoding gbk --map 任务号=legacy_id,事发时间=reported_at
  cityhubctl import export.csv --map-file old-system.yaml --progress
  cityhubctl -o json import d-320505.csv --strict`,
		Args: func(_ *cobra.Command, args []string) error {
			if len(args) != 1 {
				return usagef("import needs exactly one FILE, got %d arguments", len(args))
			}
			return nil
		},
		RunE: a.runE(func(ctx context.Context, cmd *cobra.Command, args []string) error {
			path := args[0]
			if batch < 1 || batch > maxImportBatch {
				return usagef("--batch %d: between 1 and %d", batch, maxImportBatch)
			}
			f, err := importFormat(path, format)
			if err != nil {
				return err
			}
			enc, err := legacy.ParseEncoding(encoding)
			if err != nil {
				return usagef("--encoding: %v", err)
			}
			m, err := importMapping(maps, mapFile)
			if err != nil {
				return err
			}
			if quarantine, err = quarantinePath(path, quarantine); err != nil {
				return err
			}
			opts := importOptions{
				parse: legacy.Options{Format: f, Encoding: enc, Mapping: m}, quarantine: quarantine,
				actor: actor, batch: batch, dryRun: dryRun, strict: strict,
				progress: a.wantProgress(cmd.Flags().Changed("progress"), progress),
			}
			sum, err := a.importFile(ctx, path, opts)
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
	fl.StringVar(&quarantine, "quarantine", "", "where bad rows go (default ./<base name of FILE>.quarantine.csv, in the current directory)")
	fl.StringVar(&encoding, "encoding", "", "utf-8, gb18030 or gbk (default: detected)")
	fl.StringArrayVar(&maps, "map", nil, "read columns named otherwise: OLD=column[,OLD=column…] (repeatable)")
	fl.StringVar(&mapFile, "map-file", "", "a column mapping: YAML (.yaml, .yml) or lines of OLD=column")
	fl.BoolVar(&progress, "progress", false, "print progress to stderr (default: when stderr is a terminal)")
	fl.IntVar(&batch, "batch", 500, "rows per request (at most 1000)")
	fl.BoolVar(&dryRun, "dry-run", false, "validate on the node and write the quarantine file, import nothing")
	fl.StringVar(&actor, "actor", legacy.DefaultActor, "who imports: recorded in each imported case's history")
	fl.BoolVar(&strict, "strict", false, "refuse a file with columns that are not cityhub's; exit 1 when any row was quarantined")
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

// importOptions are an import's flags, checked.
type importOptions struct {
	parse                    legacy.Options
	quarantine, actor        string
	batch                    int
	dryRun, strict, progress bool
}

// importMapping reads --map and --map-file.
func importMapping(maps []string, file string) (legacy.Mapping, error) {
	m := legacy.Mapping{}
	if file != "" {
		fh, err := os.Open(file)
		if err != nil {
			return nil, usagef("--map-file: %v", err)
		}
		ext := strings.ToLower(filepath.Ext(file))
		err = m.Read(fh, ext == ".yaml" || ext == ".yml")
		fh.Close()
		if err != nil {
			return nil, usagef("--map-file %s: %v", file, err)
		}
	}
	for _, s := range maps {
		if err := m.Parse(s); err != nil {
			return nil, usagef("--map: %v", err)
		}
	}
	return m, nil
}

// quarantinePath is where the bad rows go: given, or the input's base name
// with .quarantine.csv in the current directory (not next to the input,
// which may be a read-only or shared place such as a repository).
func quarantinePath(input, given string) (string, error) {
	q := given
	if q == "" {
		q = filepath.Base(input) + ".quarantine.csv"
	}
	abs, err := filepath.Abs(q)
	if err != nil {
		return "", err
	}
	if in, err := filepath.Abs(input); err == nil && in == abs {
		return "", usagef("--quarantine %s is the file to import", given)
	}
	return abs, nil
}

// importFile reads the file, sends its rows in batches and writes (or
// clears) the quarantine file.
func (a *app) importFile(ctx context.Context, path string, o importOptions) (*importSummary, error) {
	fh, err := os.Open(path)
	if err != nil {
		return nil, err
	}
	parsed, err := legacy.ParseWith(fh, o.parse)
	fh.Close()
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	if o.strict && len(parsed.Ignored) > 0 {
		return nil, fmt.Errorf("%s: %d columns that are not cityhub's (--strict): %s; nothing imported: map them with --map OLD=column, or leave out --strict to ignore them",
			path, len(parsed.Ignored), quoteList(parsed.Ignored))
	}
	rows, bad := legacy.Duplicates(parsed.Rows)
	bad = append(parsed.Bad, bad...)
	sum := &importSummary{File: path, Format: o.parse.Format, Encoding: parsed.Encoding, Detected: parsed.Detected,
		Ignored: parsed.Ignored, Renamed: parsed.Renamed, DryRun: o.dryRun, Rows: len(parsed.Rows) + len(parsed.Bad)}
	if sum.Ignored == nil {
		sum.Ignored = []string{}
	}
	if sum.Renamed == nil {
		sum.Renamed = []legacy.Rename{}
	}

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
		batches := splitBatches(rows, o.batch, maxBatchBytes)
		nBatches := len(batches)
		var prog *progressMeter
		if o.progress {
			prog = newProgress(a.stderr, "import", "rows", len(rows))
		}
		for i, part := range batches {
			req := &pb.ImportCasesRequest{RequestId: importRequestID(o.actor, part), Rows: part, DryRun: o.dryRun, Actor: o.actor}
			cctx, cancel := a.call(ctx)
			resp, err := cl.ImportCases(cctx, req)
			cancel()
			if err != nil {
				prog.done()
				if i > 0 && !o.dryRun {
					fmt.Fprintf(a.stderr, "batch %d of %d failed; the %d batches before it are imported: run again (rows imported are skipped)\n", i+1, nBatches, i)
				}
				return nil, err
			}
			prog.add(len(part))
			sum.Imported += int(resp.Imported)
			sum.Already += int(resp.Already)
			for _, e := range resp.Rejected {
				bad = append(bad, legacy.Bad{Err: e, Row: byLine[e.Line]})
			}
		}
		prog.done()
	}

	sum.Quarantined = len(bad)
	quarantine := o.quarantine
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

// quoteList names columns: "备注", "联系人".
func quoteList(names []string) string {
	q := make([]string, len(names))
	for i, n := range names {
		q[i] = strconv.Quote(n)
	}
	return strings.Join(q, ", ")
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
	enc := string(s.Encoding)
	if s.Detected {
		enc += " (detected)"
	}
	row(tw, "encoding", enc)
	if len(s.Ignored) > 0 {
		row(tw, "ignored columns", strings.Join(s.Ignored, ", "))
	}
	if len(s.Renamed) > 0 {
		ren := make([]string, len(s.Renamed))
		for i, r := range s.Renamed {
			ren[i] = r.String()
		}
		row(tw, "renamed columns", strings.Join(ren, ", "))
	}
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
