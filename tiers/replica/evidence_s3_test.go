package replica_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/cityhub/cityhub/config"
	pb "github.com/cityhub/cityhub/proto/cityhub/v1"
	"github.com/cityhub/cityhub/tiers/evidence"
	"github.com/cityhub/cityhub/tiers/evidence/evidencetest"
	"github.com/cityhub/cityhub/tiers/replica/testcluster"
)

// The object-store mode against a real S3 server (SeaweedFS): the bytes go
// to the bucket, only the metadata through the log; every replica serves
// the photo, also after the leader is killed; a retry stores nothing more.
func TestEvidenceInS3(t *testing.T) {
	srv := evidencetest.StartSeaweedFS(t)
	secret := filepath.Join(t.TempDir(), "s3-secret")
	if err := os.WriteFile(secret, []byte(evidencetest.SecretKey+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c := testcluster.New(t, 3, func(cfg *config.Config) {
		cfg.Node.Jurisdiction = "110105"
		cfg.Node.Tier = config.TierDistrict
		cfg.Evidence.Store = config.EvidenceStoreS3
		cfg.Evidence.S3 = config.EvidenceS3Config{Endpoint: srv.Endpoint, Bucket: evidencetest.Bucket, Prefix: "evidence/",
			Region: "us-east-1", AccessKey: evidencetest.AccessKey, SecretKeyFile: secret}
	})
	l := c.WaitLeader(10 * time.Second)
	cs := reportOne(t, c, l, "s3-r1")
	data := photo(t, 31, 1<<20)
	sha := shaHex(data)
	h := &pb.UploadEvidenceHeader{CaseId: cs.Id, RequestId: "s3-u1", Stage: pb.EvidenceStage_EVIDENCE_STAGE_REPORT, Kind: pb.EvidenceKind_EVIDENCE_KIND_BEFORE}
	resp := uploadRetry(t, c, (l+1)%3, h, data)
	if resp.Evidence.GetSha256() != sha {
		t.Fatalf("uploaded %v", resp.Evidence)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s3, err := evidence.NewS3(ctx, srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	if ok, err := s3.Exists(ctx, "evidence/"+sha); err != nil || !ok {
		t.Fatalf("object in the bucket: %v %v", ok, err)
	}
	for i := 0; i < 3; i++ {
		testcluster.WaitFor(t, 10*time.Second, "stats", func() bool {
			st, err := c.Replica(i).Node.Store().EvidenceStats()
			return err == nil && st.Blobs == 1 && st.ObjectBytes == int64(len(data)) && st.RaftBytes == 0
		})
		got, err := download(t, c, i, cs.Id, sha)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read from n%d: %d bytes, %v", i+1, len(got), err)
		}
	}
	if again := uploadRetry(t, c, l, h, data); !again.Replayed {
		t.Error("retry was not replayed")
	}
	c.Kill(l)
	for _, i := range c.Up() {
		got, err := download(t, c, i, cs.Id, sha)
		if err != nil || !bytes.Equal(got, data) {
			t.Fatalf("read from n%d after the leader was killed: %d bytes, %v", i+1, len(got), err)
		}
	}
}
