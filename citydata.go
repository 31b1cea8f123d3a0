// Package cityhub holds the sample city that the embedded default
// federation runs (testdata/city): its federation tree with departments,
// grids, responsibility catalogue (责任清单), component register and a
// legacy district backlog to import and reconcile. See testdata/city/README.md.
package cityhub

import "embed"

// SampleCity is testdata/city, embedded.
//
//go:embed testdata/city
var SampleCity embed.FS

// SampleFile returns one file of the sample city, e.g. "federation.yaml".
// The files are embedded, so a missing one is a build mistake: it panics.
func SampleFile(name string) []byte {
	b, err := SampleCity.ReadFile("testdata/city/" + name)
	if err != nil {
		panic("cityhub: sample city: " + err.Error())
	}
	return b
}
