package evidence_test

import (
	"bytes"
	"context"
	"io"
	"testing"
	"time"

	"github.com/cityhub/cityhub/tiers/evidence"
	"github.com/cityhub/cityhub/tiers/evidence/evidencetest"
)

// The object store against a real S3 server (SeaweedFS): put, exists, get
// byte for byte, delete.
func TestS3ObjectStore(t *testing.T) {
	srv := evidencetest.StartSeaweedFS(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	s3, err := evidence.NewS3(ctx, srv.Config)
	if err != nil {
		t.Fatal(err)
	}
	key := "evidence/" + "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	if ok, err := s3.Exists(ctx, key); err != nil || ok {
		t.Fatalf("exists before put: %v %v", ok, err)
	}
	data := bytes.Repeat([]byte("证据照片 "), 100_000)
	if err := s3.Put(ctx, key, bytes.NewReader(data), int64(len(data)), "image/jpeg"); err != nil {
		t.Fatal(err)
	}
	if ok, err := s3.Exists(ctx, key); err != nil || !ok {
		t.Fatalf("exists after put: %v %v", ok, err)
	}
	rc, err := s3.Get(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) {
		t.Fatalf("get: %d bytes, %v", len(got), err)
	}
	if err := s3.Delete(ctx, key); err != nil {
		t.Fatal(err)
	}
	if ok, err := s3.Exists(ctx, key); err != nil || ok {
		t.Fatalf("exists after delete: %v %v", ok, err)
	}
	if _, err := s3.Get(ctx, key); err == nil {
		t.Error("get after delete succeeded")
	}
}
