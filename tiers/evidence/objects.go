package evidence

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// ObjectStore keeps blobs outside the group (evidence.store: s3). The
// consumer's interface: S3 implements it, tests may use another.
type ObjectStore interface {
	// Put stores size bytes of r under key (a key already there holds the
	// same content: keys are content addresses).
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Get opens the object under key.
	Get(ctx context.Context, key string) (io.ReadCloser, error)
	// Exists reports whether key is stored.
	Exists(ctx context.Context, key string) (bool, error)
	// Delete removes the object under key (absent is no error).
	Delete(ctx context.Context, key string) error
}

// S3Config is where the S3-compatible bucket is and how to reach it.
type S3Config struct {
	Endpoint  string // host:port
	Bucket    string
	Prefix    string // key prefix, e.g. "evidence/"
	Region    string
	AccessKey string
	SecretKey string
	UseTLS    bool
}

// S3 is an ObjectStore in an S3-compatible bucket (MinIO, SeaweedFS,
// Ceph RGW, AWS…) through the minio-go client.
type S3 struct {
	c      *minio.Client
	bucket string
}

// NewS3 connects to the bucket of cfg, creating it when it does not exist.
func NewS3(ctx context.Context, cfg S3Config) (*S3, error) {
	c, err := minio.New(cfg.Endpoint, &minio.Options{
		Creds:  credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure: cfg.UseTLS,
		Region: cfg.Region,
	})
	if err != nil {
		return nil, fmt.Errorf("evidence.s3: %w", err)
	}
	ok, err := c.BucketExists(ctx, cfg.Bucket)
	if err != nil {
		return nil, fmt.Errorf("evidence.s3: bucket %s at %s: %w", cfg.Bucket, cfg.Endpoint, err)
	}
	if !ok {
		if err := c.MakeBucket(ctx, cfg.Bucket, minio.MakeBucketOptions{Region: cfg.Region}); err != nil {
			return nil, fmt.Errorf("evidence.s3: make bucket %s: %w", cfg.Bucket, err)
		}
	}
	return &S3{c: c, bucket: cfg.Bucket}, nil
}

// Put implements ObjectStore.
func (s *S3) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	_, err := s.c.PutObject(ctx, s.bucket, key, r, size, minio.PutObjectOptions{ContentType: contentType})
	if err != nil {
		return fmt.Errorf("put %s: %w", key, err)
	}
	return nil
}

// Get implements ObjectStore.
func (s *S3) Get(ctx context.Context, key string) (io.ReadCloser, error) {
	o, err := s.c.GetObject(ctx, s.bucket, key, minio.GetObjectOptions{})
	if err != nil {
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	if _, err := o.Stat(); err != nil {
		o.Close()
		return nil, fmt.Errorf("get %s: %w", key, err)
	}
	return o, nil
}

// Exists implements ObjectStore.
func (s *S3) Exists(ctx context.Context, key string) (bool, error) {
	_, err := s.c.StatObject(ctx, s.bucket, key, minio.StatObjectOptions{})
	if err == nil {
		return true, nil
	}
	var er minio.ErrorResponse
	if errors.As(err, &er) && (er.Code == "NoSuchKey" || er.StatusCode == 404) {
		return false, nil
	}
	return false, fmt.Errorf("stat %s: %w", key, err)
}

// Delete implements ObjectStore.
func (s *S3) Delete(ctx context.Context, key string) error {
	if err := s.c.RemoveObject(ctx, s.bucket, key, minio.RemoveObjectOptions{}); err != nil {
		return fmt.Errorf("delete %s: %w", key, err)
	}
	return nil
}
