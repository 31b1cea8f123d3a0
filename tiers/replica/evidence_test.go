package replica_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/jpeg"
	"io"
	"math/rand/v2"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/evidence"
	"github.com/cityhub/cityhub/tiers/replica"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// photo makes a JPEG of about size bytes (noise does not compress).
func photo(t testing.TB, seed uint64, size int) []byte {
	t.Helper()
	r := rand.New(rand.NewPCG(seed, 7))
	side := 64
	for {
		img := image.NewRGBA(image.Rect(0, 0, side, side))
		for i := range img.Pix {
			img.Pix[i] = uint8(r.IntN(256))
		}
		img.Set(0, 0, color.RGBA{1, 2, 3, 255})
		var b bytes.Buffer
		if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: 95}); err != nil {
			t.Fatal(err)
		}
		if b.Len() >= size {
			return b.Bytes()
		}
		side = side * 3 / 2
	}
}

func shaHex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// uploadRetry uploads through member i, retrying while the group is not
// ready for the new command type (every replica registers its log version
// at start: the version gate answers Unavailable until then) or elects.
func uploadRetry(t testing.TB, c *testcluster.Cluster, i int, h *pb.UploadEvidenceHeader, data []byte) *pb.UploadEvidenceResponse {
	t.Helper()
	var resp *pb.UploadEvidenceResponse
	testcluster.WaitFor(t, 30*time.Second, "upload "+h.RequestId, func() bool {
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		var err error
		resp, err = evidence.UploadStream(ctx, pb.NewEvidenceServiceClient(c.Conn(i)), h, bytes.NewReader(data))
		if err != nil && status.Code(err) != codes.Unavailable {
			t.Fatalf("upload %s: %v", h.RequestId, err)
		}
		return err == nil
	})
	return resp
}

func reportOne(t testing.TB, c *testcluster.Cluster, i int, rid string) *pb.Case {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	resp, err := c.Cases(i).ReportCase(ctx, &pb.ReportCaseRequest{
		RequestId: rid, Actor: "insp-1", Role: pb.Role_ROLE_INSPECTOR, Source: pb.Source_SOURCE_INSPECTOR,
		Kind: pb.Kind_KIND_EVENT, MajorCode: "01", MinorCode: "02", GridCode: "110105001001001", Description: "暴露垃圾",
	})
	if err != nil {
		t.Fatalf("report: %v", err)
	}
	return resp.Case
}

func download(t testing.TB, c *testcluster.Cluster, i int, caseID, sha string) ([]byte, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var buf bytes.Buffer
	_, err := evidence.Download(ctx, pb.NewEvidenceServiceClient(c.Conn(i)), caseID, sha, &buf)
	return buf.Bytes(), err
}

// A photo uploaded through a follower goes through the log in chunks: every
// replica keeps it, so it is read from each, and again from the others
// after one is killed. A retried upload (same request id) and a second
// upload of the same content store nothing more.
func TestEvidenceReplicatedAndIdempotent(t *testing.T) {
	c := testcluster.New(t, 3, func(cfg *config.Config) {
		cfg.Node.Jurisdiction = "110105"
		cfg.Node.Tier = config.TierDistrict
		cfg.Evidence.ChunkBytes = 256 << 10
	})
	l := c.WaitLeader(10 * time.Second)
	f := (l + 1) % 3
	cs := reportOne(t, c, l, "ev-r1")
	data := photo(t, 1, 700<<10) // three chunks
	sha := shaHex(data)
	h := &pb.UploadEvidenceHeader{CaseId: cs.Id, RequestId: "ev-u1", Stage: pb.EvidenceStage_EVIDENCE_STAGE_REPORT,
		Kind: pb.EvidenceKind_EVIDENCE_KIND_BEFORE, FileName: "现场.jpg"}
	resp := uploadRetry(t, c, f, h, data)
	// (Replayed may be true: a retry after an Unavailable whose attach had
	// committed answers with the first result.)
	if resp.Evidence.GetSha256() != sha || resp.Evidence.ContentType != "image/jpeg" || resp.Evidence.Size != int64(len(data)) {
		t.Fatalf("upload answer: %v", resp.Evidence)
	}
	if resp.Case.Version != cs.Version+1 || len(resp.Case.Evidence) != 1 {
		t.Fatalf("case after upload: version %d, %d refs", resp.Case.Version, len(resp.Case.Evidence))
	}
	for i := 0; i < 3; i++ {
		got, err := download(t, c, i, cs.Id, sha)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read from n%d: %d bytes, %v", i+1, len(got), err)
		}
	}
	// Retry with the same request id, through another replica: one copy.
	again := uploadRetry(t, c, l, h, data)
	if !again.Replayed || again.Case.Version != resp.Case.Version {
		t.Errorf("retry: replayed %v, version %d", again.Replayed, again.Case.Version)
	}
	// The same content under a new request id: attached already, no new version.
	h2 := &pb.UploadEvidenceHeader{CaseId: cs.Id, RequestId: "ev-u2", Stage: pb.EvidenceStage_EVIDENCE_STAGE_REPORT}
	if dup := uploadRetry(t, c, f, h2, data); !dup.Replayed || dup.Case.Version != resp.Case.Version || len(dup.Case.Evidence) != 1 {
		t.Errorf("second upload of the same content: replayed %v version %d refs %d", dup.Replayed, dup.Case.Version, len(dup.Case.Evidence))
	}
	for i := 0; i < 3; i++ {
		testcluster.WaitFor(t, 10*time.Second, "stats on every replica", func() bool {
			st, err := c.Replica(i).Node.Store().EvidenceStats()
			return err == nil && st.Blobs == 1 && st.RaftBytes == int64(len(data))
		})
	}
	// Kill the leader: the others still serve it, and take new uploads.
	c.Kill(l)
	for _, i := range c.Up() {
		got, err := download(t, c, i, cs.Id, sha)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read from n%d after the leader was killed: %d bytes, %v", i+1, len(got), err)
		}
	}
	c.WaitLeader(20 * time.Second)
	after := photo(t, 2, 100<<10)
	r3 := uploadRetry(t, c, c.Up()[0], &pb.UploadEvidenceHeader{CaseId: cs.Id, RequestId: "ev-u3",
		Stage: pb.EvidenceStage_EVIDENCE_STAGE_HANDLING, Kind: pb.EvidenceKind_EVIDENCE_KIND_AFTER}, after)
	if len(r3.Case.Evidence) != 2 {
		t.Fatalf("after photo: %d refs", len(r3.Case.Evidence))
	}
	// The killed replica catches up on restart and serves both.
	c.Start(l)
	testcluster.WaitFor(t, 30*time.Second, "the restarted replica has the after photo", func() bool {
		got, err := download(t, c, l, cs.Id, shaHex(after))
		return err == nil && bytes.Equal(got, after)
	})
}

// fieldOf returns the field a status names.
func fieldOf(err error) string {
	for _, d := range status.Convert(err).Details() {
		if br, ok := d.(*errdetails.BadRequest); ok && len(br.FieldViolations) > 0 {
			return br.FieldViolations[0].Field
		}
	}
	return ""
}

// Uploads of a type outside the allow-list or over the size limit are
// refused before anything goes through the log, naming the field: over
// gRPC InvalidArgument / ResourceExhausted, over REST 415 / 413 with a JSON
// body.
func TestEvidenceRefusals(t *testing.T) {
	c := testcluster.New(t, 1, func(cfg *config.Config) {
		cfg.Node.Jurisdiction = "110105"
		cfg.Node.Tier = config.TierDistrict
		cfg.Evidence.MaxBytes = 200 << 10
	})
	c.WaitLeader(10 * time.Second)
	cs := reportOne(t, c, 0, "ref-r1")
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cl := pb.NewEvidenceServiceClient(c.Conn(0))
	applied := func() uint64 { i, _, _ := c.Replica(0).Node.Store().Applied(); return i }
	// One accepted upload first: the replica's registration (log version
	// 2) is then in the log, and nothing else writes.
	first := photo(t, 9, 10<<10)
	uploadRetry(t, c, 0, &pb.UploadEvidenceHeader{CaseId: cs.Id, RequestId: "t0", Stage: pb.EvidenceStage_EVIDENCE_STAGE_REPORT}, first)
	before := applied()
	hdr := func(rid string) *pb.UploadEvidenceHeader {
		return &pb.UploadEvidenceHeader{CaseId: cs.Id, RequestId: rid, Stage: pb.EvidenceStage_EVIDENCE_STAGE_REPORT}
	}
	_, err := evidence.UploadStream(ctx, cl, hdr("t1"), strings.NewReader("<html><body>not a photo</body></html>"))
	if status.Code(err) != codes.InvalidArgument || fieldOf(err) != "content_type" {
		t.Errorf("html upload: %v (field %q), want InvalidArgument naming content_type", err, fieldOf(err))
	}
	_, err = evidence.UploadStream(ctx, cl, hdr("t2"), bytes.NewReader(photo(t, 3, 300<<10)))
	if status.Code(err) != codes.ResourceExhausted || fieldOf(err) != "data" {
		t.Errorf("large upload: %v (field %q), want ResourceExhausted naming data", err, fieldOf(err))
	}
	h := hdr("t3")
	h.Size = 1 << 30
	_, err = evidence.UploadStream(ctx, cl, h, bytes.NewReader([]byte{1}))
	if status.Code(err) != codes.ResourceExhausted || fieldOf(err) != "size" {
		t.Errorf("declared size: %v (field %q), want ResourceExhausted naming size", err, fieldOf(err))
	}
	h = hdr("t4")
	h.Stage = 0
	_, err = evidence.UploadStream(ctx, cl, h, bytes.NewReader(photo(t, 4, 1000)))
	if status.Code(err) != codes.InvalidArgument || fieldOf(err) != "stage" {
		t.Errorf("no stage: %v (field %q)", err, fieldOf(err))
	}
	if got := applied(); got != before {
		t.Errorf("refused uploads moved the applied index %d → %d", before, got)
	}

	// REST.
	base := c.HTTPBase(0) + "/v1/evidence/" + cs.Id
	post := func(q string, body io.Reader, length int64) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, base+"?"+q, body)
		req.ContentLength = length
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatalf("POST: %v", err)
		}
		defer resp.Body.Close()
		var m map[string]any
		if resp.Header.Get("Content-Type") != "application/json" || json.NewDecoder(resp.Body).Decode(&m) != nil {
			t.Errorf("answer %d is not JSON (%s)", resp.StatusCode, resp.Header.Get("Content-Type"))
		}
		return resp.StatusCode, m
	}
	errField := func(m map[string]any) string {
		e, _ := m["error"].(map[string]any)
		f, _ := e["field"].(string)
		return f
	}
	code, m := post("request_id=h1&stage=report", strings.NewReader("plain text, not a photo"), -1)
	if code != http.StatusUnsupportedMediaType || errField(m) != "content_type" {
		t.Errorf("REST text: %d %v, want 415 naming content_type", code, m)
	}
	big := photo(t, 5, 300<<10)
	code, m = post("request_id=h2&stage=report", bytes.NewReader(big), int64(len(big)))
	if code != http.StatusRequestEntityTooLarge || errField(m) != "size" {
		t.Errorf("REST large with its length: %d %v, want 413", code, m)
	}
	code, m = post("request_id=h3&stage=report", io.MultiReader(bytes.NewReader(big)), -1) // chunked: no length
	if code != http.StatusRequestEntityTooLarge || errField(m) != "data" {
		t.Errorf("REST large streamed: %d %v, want 413 naming data", code, m)
	}
	if got := applied(); got != before {
		t.Errorf("refused REST uploads moved the applied index %d → %d", before, got)
	}
	// And one that is accepted, then read back over REST.
	small := photo(t, 6, 20<<10)
	code, m = post("request_id=h4&stage=handling&kind=after&file_name=after.jpg", bytes.NewReader(small), int64(len(small)))
	if code != http.StatusCreated {
		t.Fatalf("REST upload: %d %v", code, m)
	}
	resp, err := http.Get(base + "/" + shaHex(small))
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != 200 || !bytes.Equal(got, small) || resp.Header.Get("Content-Type") != "image/jpeg" || resp.Header.Get("ETag") != fmt.Sprintf("%q", shaHex(small)) {
		t.Errorf("REST get: %d %d bytes %v", resp.StatusCode, len(got), resp.Header)
	}
	resp, err = http.Get(base)
	if err != nil {
		t.Fatal(err)
	}
	var list struct {
		Evidence []struct {
			Sha256 string `json:"sha256"`
			Stage  string `json:"stage"`
		} `json:"evidence"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&list)
	resp.Body.Close()
	if len(list.Evidence) != 2 || list.Evidence[1].Sha256 != shaHex(small) || list.Evidence[1].Stage != "EVIDENCE_STAGE_HANDLING" {
		t.Errorf("REST list: %+v", list)
	}
	// Metrics: the bytes kept, the uploads by outcome.
	resp, err = http.Get(c.HTTPBase(0) + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	for _, want := range []string{
		fmt.Sprintf("cityhub_evidence_stored_bytes{storage=\"raft\"} %d\n", len(first)+len(small)),
		"cityhub_evidence_blobs 2\n",
	} {
		if !strings.Contains(string(metrics), want) {
			t.Errorf("/metrics lacks %q", strings.TrimSpace(want))
		}
	}
	// Seven refusals above (an Unavailable retried while the group
	// registered its log version counts too).
	var refused int
	if m := regexp.MustCompile(`cityhub_evidence_uploads_total\{outcome="refused"\} (\d+)`).FindSubmatch(metrics); m != nil {
		refused, _ = strconv.Atoi(string(m[1]))
	}
	if refused < 7 {
		t.Errorf("refused uploads counted %d, want at least 7", refused)
	}
}

// An action names the evidence it stands on: the handling names its
// after-photo by SHA-256 (or as an "evidence:" attachment), kept in the
// history entry; evidence the case does not carry is refused naming the
// field, before the log.
func TestActionNamesEvidence(t *testing.T) {
	c := testcluster.New(t, 1, func(cfg *config.Config) {
		cfg.Node.Jurisdiction = "110105"
		cfg.Node.Tier = config.TierDistrict
	})
	c.WaitLeader(10 * time.Second)
	cs := reportOne(t, c, 0, "an-r1")
	after := photo(t, 11, 5<<10)
	uploadRetry(t, c, 0, &pb.UploadEvidenceHeader{CaseId: cs.Id, RequestId: "an-u1", Stage: pb.EvidenceStage_EVIDENCE_STAGE_HANDLING, Kind: pb.EvidenceKind_EVIDENCE_KIND_AFTER}, after)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := c.Cases(0).Act(ctx, &pb.ActRequest{CaseId: cs.Id, RequestId: "an-a0", Action: pb.Action_ACTION_VERIFY, Actor: "insp", Role: pb.Role_ROLE_INSPECTOR,
		Evidence: []string{strings.Repeat("0", 64)}})
	if status.Code(err) != codes.InvalidArgument || fieldOf(err) != "evidence" {
		t.Fatalf("unknown evidence: %v (field %q), want InvalidArgument naming evidence", err, fieldOf(err))
	}
	resp, err := c.Cases(0).Act(ctx, &pb.ActRequest{CaseId: cs.Id, RequestId: "an-a1", Action: pb.Action_ACTION_VERIFY, Actor: "insp", Role: pb.Role_ROLE_INSPECTOR,
		Attachments: []string{"photo://legacy.jpg", "evidence:" + shaHex(after)}})
	if err != nil {
		t.Fatal(err)
	}
	h := resp.Case.History[len(resp.Case.History)-1]
	if len(h.Evidence) != 1 || h.Evidence[0] != shaHex(after) || len(h.Attachments) != 1 || h.Attachments[0] != "photo://legacy.jpg" {
		t.Errorf("history entry: evidence %v attachments %v", h.Evidence, h.Attachments)
	}
}

// Retention removes the bytes of evidence whose cases all ended longer ago
// than evidence.retention, through the log on every replica; the reference
// stays, and a read answers NotFound. Evidence of an open case is kept.
func TestEvidenceRetention(t *testing.T) {
	clk := testcluster.NewClock(time.Date(2026, 11, 23, 9, 0, 0, 0, time.UTC))
	c := testcluster.NewWith(t, 1, func(config.Config) replica.Options { return replica.Options{Clock: clk} }, func(cfg *config.Config) {
		cfg.Node.Jurisdiction = "110105"
		cfg.Node.Tier = config.TierDistrict
		cfg.Evidence.Retention = 30 * 24 * time.Hour
		cfg.Evidence.RetentionInterval = time.Hour // the test sweeps itself
	})
	c.WaitLeader(10 * time.Second)
	closed, open := reportOne(t, c, 0, "rt-r1"), reportOne(t, c, 0, "rt-r2")
	p1, p2 := photo(t, 21, 4<<10), photo(t, 22, 4<<10)
	uploadRetry(t, c, 0, &pb.UploadEvidenceHeader{CaseId: closed.Id, RequestId: "rt-u1", Stage: pb.EvidenceStage_EVIDENCE_STAGE_REPORT}, p1)
	uploadRetry(t, c, 0, &pb.UploadEvidenceHeader{CaseId: open.Id, RequestId: "rt-u2", Stage: pb.EvidenceStage_EVIDENCE_STAGE_REPORT}, p2)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := c.Cases(0).Act(ctx, &pb.ActRequest{CaseId: closed.Id, RequestId: "rt-a1", Action: pb.Action_ACTION_SELF_HANDLE, Actor: "insp", Role: pb.Role_ROLE_INSPECTOR, Note: "自行处置"}); err != nil {
		t.Fatal(err)
	}
	ret := c.Replica(0).Retention()
	if n, err := ret.Sweep(ctx); err != nil || n != 0 {
		t.Fatalf("sweep within retention: %d %v", n, err)
	}
	clk.Set(clk.Now().Add(31 * 24 * time.Hour))
	if n, err := ret.Sweep(ctx); err != nil || n != 1 {
		t.Fatalf("sweep past retention: %d %v, want 1", n, err)
	}
	if _, err := download(t, c, 0, closed.Id, shaHex(p1)); status.Code(err) != codes.NotFound {
		t.Errorf("read of purged evidence: %v, want NotFound", err)
	}
	if got, err := download(t, c, 0, open.Id, shaHex(p2)); err != nil || !bytes.Equal(got, p2) {
		t.Errorf("evidence of the open case: %d bytes, %v", len(got), err)
	}
	st, _ := c.Replica(0).Node.Store().EvidenceStats()
	if st.Purged != 1 || st.RaftBytes != int64(len(p2)) {
		t.Errorf("stats %+v", st)
	}
	if n, _ := ret.Sweep(ctx); n != 0 {
		t.Errorf("a second sweep purged %d", n)
	}
}
