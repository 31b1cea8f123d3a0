package config

import (
	"mime"
	"time"
)

// Evidence storage modes (evidence.store).
const (
	// EvidenceStoreRaft keeps the bytes in the group: chunks through the
	// Raft log, on every replica (the default).
	EvidenceStoreRaft = "raft"
	// EvidenceStoreS3 keeps the bytes in an S3-compatible bucket and only
	// their metadata in the group.
	EvidenceStoreS3 = "s3"
)

// EvidenceConfig sets how a node keeps the photos and files of cases
// (tiers/evidence; README, Evidence).
type EvidenceConfig struct {
	// MaxBytes bounds one upload. It is the limit of the REST upload route
	// (larger than limits.max_request_bytes) and of a gRPC upload stream.
	MaxBytes int64 `mapstructure:"max_bytes"`
	// ChunkBytes is the size of one chunk entry in the Raft log (64 KiB to
	// 1 MiB).
	ChunkBytes int `mapstructure:"chunk_bytes"`
	// Types is the allow-list of content types, as sniffed from the
	// content (not the client's word).
	Types []string `mapstructure:"types"`
	// MaxPerCase bounds the photos and files of one case.
	MaxPerCase int `mapstructure:"max_per_case"`
	// Retention: the bytes of evidence whose every case ended (closed,
	// not filed, voided) longer ago than this are removed; the references
	// stay, marked removed. 0 keeps evidence for ever.
	Retention time.Duration `mapstructure:"retention"`
	// RetentionInterval is how often the leader looks for such evidence.
	RetentionInterval time.Duration `mapstructure:"retention_interval"`
	// Store is raft (the default) or s3.
	Store string `mapstructure:"store"`
	// SpoolDir holds uploads while they are hashed ("" is the system's
	// temporary directory).
	SpoolDir string           `mapstructure:"spool_dir"`
	S3       EvidenceS3Config `mapstructure:"s3"`
}

// EvidenceS3Config is the bucket of evidence.store: s3.
type EvidenceS3Config struct {
	Endpoint string `mapstructure:"endpoint"` // host:port
	Bucket   string `mapstructure:"bucket"`
	Prefix   string `mapstructure:"prefix"`
	Region   string `mapstructure:"region"`
	// AccessKey, and the file holding the secret key (never the secret in
	// the configuration itself).
	AccessKey     string `mapstructure:"access_key"`
	SecretKeyFile string `mapstructure:"secret_key_file"`
	TLS           bool   `mapstructure:"tls"`
}

// DefaultEvidence is the built-in evidence configuration.
func DefaultEvidence() EvidenceConfig {
	return EvidenceConfig{
		MaxBytes:          32 << 20,
		ChunkBytes:        512 << 10,
		Types:             []string{"image/jpeg", "image/png", "image/webp", "video/mp4", "application/pdf"},
		MaxPerCase:        50,
		RetentionInterval: time.Hour,
		Store:             EvidenceStoreRaft,
		S3:                EvidenceS3Config{Prefix: "evidence/", Region: "us-east-1"},
	}
}

func (c *Config) validateEvidence(v *validator) {
	e := c.Evidence
	if e.MaxBytes < 1<<10 || e.MaxBytes > 1<<30 {
		v.add("evidence.max_bytes", "%d must be between 1024 (1 KiB) and 1073741824 (1 GiB)", e.MaxBytes)
	}
	if e.ChunkBytes < 64<<10 || e.ChunkBytes > 1<<20 {
		v.add("evidence.chunk_bytes", "%d must be between 65536 (64 KiB) and 1048576 (1 MiB): one chunk is one Raft log entry", e.ChunkBytes)
	}
	if len(e.Types) == 0 {
		v.add("evidence.types", "at least one content type is needed")
	}
	for _, t := range e.Types {
		if mt, params, err := mime.ParseMediaType(t); err != nil || mt != t || len(params) > 0 {
			v.add("evidence.types", "%q is not a bare content type such as image/jpeg", t)
		}
	}
	if e.MaxPerCase < 1 || e.MaxPerCase > 200 {
		v.add("evidence.max_per_case", "%d must be between 1 and 200", e.MaxPerCase)
	}
	if e.Retention < 0 || (e.Retention > 0 && e.Retention < 24*time.Hour) {
		v.add("evidence.retention", "%v must be 0 (keep for ever) or at least 24h", e.Retention)
	}
	if e.RetentionInterval < time.Minute {
		v.add("evidence.retention_interval", "%v must be at least 1m", e.RetentionInterval)
	}
	switch e.Store {
	case EvidenceStoreRaft:
	case EvidenceStoreS3:
		v.hostPort("evidence.s3.endpoint", e.S3.Endpoint, true)
		if e.S3.Bucket == "" {
			v.add("evidence.s3.bucket", "required with evidence.store: s3")
		}
		if e.S3.AccessKey == "" || e.S3.SecretKeyFile == "" {
			v.add("evidence.s3.secret_key_file", "access_key and secret_key_file are required with evidence.store: s3")
		}
	default:
		v.add("evidence.store", "%q must be one of %v", e.Store, []string{EvidenceStoreRaft, EvidenceStoreS3})
	}
}
