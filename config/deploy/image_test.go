package deploy_test

import (
	"archive/tar"
	"compress/gzip"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

// ociImage is the part of an OCI image layout the test reads.
type ociImage struct {
	dir string
	t   *testing.T
}

type ociDescriptor struct {
	MediaType   string            `json:"mediaType"`
	Digest      string            `json:"digest"`
	Size        int64             `json:"size"`
	Annotations map[string]string `json:"annotations"`
}

// blob reads a blob and checks its digest.
func (o ociImage) blob(d ociDescriptor) []byte {
	o.t.Helper()
	algo, hexSum, ok := strings.Cut(d.Digest, ":")
	if !ok || algo != "sha256" {
		o.t.Fatalf("digest %q", d.Digest)
	}
	b, err := os.ReadFile(filepath.Join(o.dir, "blobs", algo, hexSum))
	if err != nil {
		o.t.Fatal(err)
	}
	if sum := sha256.Sum256(b); hex.EncodeToString(sum[:]) != hexSum {
		o.t.Fatalf("blob %s does not match its digest", d.Digest)
	}
	return b
}

func (o ociImage) json(d ociDescriptor, v any) {
	o.t.Helper()
	if err := json.Unmarshal(o.blob(d), v); err != nil {
		o.t.Fatalf("%s: %v", d.Digest, err)
	}
}

// TestImage checks the image `make image` built (CITYHUB_IMAGE: its OCI
// layout, bin/image/oci; scripts/check-deploy.sh sets it, other runs skip):
// its configuration runs cityhubd as a user that is not root, in the data
// volume; its one layer holds the binaries owned by root and the data
// directory owned by that user; and cityhubd taken out of it answers
// --version with the version the image is labelled with, and --help with
// exit 0, also inside the image's file system as its user (chroot), where
// this machine lets root do that.
func TestImage(t *testing.T) {
	dir := os.Getenv("CITYHUB_IMAGE")
	if dir == "" {
		t.Skip("CITYHUB_IMAGE (an OCI image layout, bin/image/oci) not set: scripts/check-deploy.sh sets it after make image")
	}
	tag := os.Getenv("CITYHUB_IMAGE_TAG")
	if tag == "" {
		tag = "latest"
	}
	o := ociImage{dir: dir, t: t}
	var index struct{ Manifests []ociDescriptor }
	raw, err := os.ReadFile(filepath.Join(dir, "index.json"))
	if err != nil {
		t.Fatal(err)
	}
	if err := json.Unmarshal(raw, &index); err != nil {
		t.Fatal(err)
	}
	var md *ociDescriptor
	for i, m := range index.Manifests {
		if m.Annotations["org.opencontainers.image.ref.name"] == tag {
			md = &index.Manifests[i]
		}
	}
	if md == nil {
		t.Fatalf("no image tagged %q in %s", tag, dir)
	}
	var manifest struct {
		Config ociDescriptor
		Layers []ociDescriptor
	}
	o.json(*md, &manifest)
	var cfg struct {
		Architecture, OS string
		Config           struct {
			User         string
			Entrypoint   []string
			Cmd          []string
			WorkingDir   string
			Volumes      map[string]struct{}
			ExposedPorts map[string]struct{}
			Labels       map[string]string
		} `json:"config"`
	}
	o.json(manifest.Config, &cfg)
	c := cfg.Config
	if uid, _, _ := strings.Cut(c.User, ":"); uid == "" || uid == "0" || uid == "root" {
		t.Errorf("the image runs as %q: want a user that is not root", c.User)
	}
	if len(c.Entrypoint) != 1 || c.Entrypoint[0] != "/usr/local/bin/cityhubd" {
		t.Errorf("entrypoint %q, want [/usr/local/bin/cityhubd]", c.Entrypoint)
	}
	if _, ok := c.Volumes["/var/lib/cityhub"]; !ok || c.WorkingDir != "/var/lib/cityhub" {
		t.Errorf("volumes %v, working directory %q: want /var/lib/cityhub", c.Volumes, c.WorkingDir)
	}
	for _, p := range []string{"7001/tcp", "7101/tcp", "7201/tcp", "7301/tcp", "7401/tcp"} {
		if _, ok := c.ExposedPorts[p]; !ok {
			t.Errorf("port %s not exposed (%v)", p, c.ExposedPorts)
		}
	}
	if len(manifest.Layers) != 1 {
		t.Fatalf("%d layers, want 1", len(manifest.Layers))
	}
	layer := manifest.Layers[0]
	t.Logf("image %s: one layer of %.1f MiB (compressed), user %s, version %s", tag, float64(layer.Size)/(1<<20), c.User, c.Labels["org.opencontainers.image.version"])
	if layer.Size > 40<<20 {
		t.Errorf("the layer is %d bytes: the image should stay small (two static binaries)", layer.Size)
	}

	// The layer: owners and modes, and the files taken out.
	root := t.TempDir()
	zr, err := gzip.NewReader(strings.NewReader(string(o.blob(layer))))
	if err != nil {
		t.Fatalf("layer %s is not gzip: %v", layer.MediaType, err)
	}
	tr := tar.NewReader(zr)
	seen := map[string]*tar.Header{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		name := path.Clean(strings.TrimPrefix(h.Name, "./"))
		seen[name] = h
		dst := filepath.Join(root, name)
		switch h.Typeflag {
		case tar.TypeDir:
			if err := os.MkdirAll(dst, 0o755); err != nil {
				t.Fatal(err)
			}
		case tar.TypeReg:
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				t.Fatal(err)
			}
			f, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, os.FileMode(h.Mode)&0o777)
			if err != nil {
				t.Fatal(err)
			}
			if _, err := io.Copy(f, tr); err != nil {
				t.Fatal(err)
			}
			f.Close()
		}
	}
	for name, want := range map[string][2]int{
		"usr/local/bin/cityhubd": {0, 0}, "usr/local/bin/cityhubctl": {0, 0}, "etc/passwd": {0, 0}, "var/lib/cityhub": {65532, 65532},
	} {
		h := seen[name]
		if h == nil {
			t.Errorf("the image has no /%s", name)
			continue
		}
		if h.Uid != want[0] || h.Gid != want[1] {
			t.Errorf("/%s owned by %d:%d, want %d:%d", name, h.Uid, h.Gid, want[0], want[1])
		}
		if strings.HasPrefix(name, "usr/") && h.Mode&0o022 != 0 {
			t.Errorf("/%s is writable by others than root (%o)", name, h.Mode)
		}
	}
	if passwd, err := os.ReadFile(filepath.Join(root, "etc/passwd")); err != nil || !strings.Contains(string(passwd), "cityhub:x:65532:65532:") {
		t.Errorf("/etc/passwd has no cityhub user 65532: %q %v", passwd, err)
	}

	bin := filepath.Join(root, "usr/local/bin/cityhubd")
	out, err := exec.Command(bin, "--version").CombinedOutput()
	if err != nil {
		t.Fatalf("cityhubd --version: %v\n%s", err, out)
	}
	if want := "cityhubd " + c.Labels["org.opencontainers.image.version"] + " "; !strings.HasPrefix(string(out), want) {
		t.Errorf("cityhubd --version printed %q, want it to start %q (the image's version label)", out, want)
	}
	if out, err := exec.Command(bin, "--help").CombinedOutput(); err != nil || !strings.Contains(string(out), "--config") {
		t.Errorf("cityhubd --help: %v\n%s", err, out)
	}
	if out, err := exec.Command(filepath.Join(root, "usr/local/bin/cityhubctl"), "--version").CombinedOutput(); err != nil || !strings.HasPrefix(string(out), "cityhubctl ") {
		t.Errorf("cityhubctl --version: %v %q", err, out)
	}
	// Inside the image's file system, as its user: what a container
	// runtime would run, without one.
	if os.Geteuid() == 0 {
		if _, err := exec.LookPath("chroot"); err == nil {
			cmd := exec.Command("chroot", "--userspec="+c.User, root, c.Entrypoint[0], "--version")
			if out, err := cmd.CombinedOutput(); err != nil {
				t.Logf("chroot into the image refused here (%v: %s): the binary ran outside it only", err, strings.TrimSpace(string(out)))
			} else if !strings.HasPrefix(string(out), "cityhubd ") {
				t.Errorf("in the image as %s: cityhubd --version printed %q", c.User, out)
			} else {
				t.Logf("in the image as %s: %s", c.User, strings.TrimSpace(string(out)))
			}
		}
	}
}
