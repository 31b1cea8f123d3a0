package cityhub

import (
	"bytes"
	"os"
	"path/filepath"
	"testing"
)

func TestWriteSample(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "city")
	paths, err := WriteSample(dir, SampleRules, SampleComponents, SampleGrids, SampleTopology)
	if err != nil {
		t.Fatal(err)
	}
	for i, name := range []string{SampleRules, SampleComponents, SampleGrids, SampleTopology} {
		b, err := os.ReadFile(paths[i])
		if err != nil || !bytes.Equal(b, SampleFile(name)) || filepath.Base(paths[i]) != name {
			t.Errorf("%s: %s (%v)", name, paths[i], err)
		}
	}
	if _, err := WriteSample(dir, "no-such-file"); err == nil {
		t.Error("an unknown file was written")
	}
}
