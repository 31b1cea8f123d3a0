package certs

import (
	"fmt"
	"path/filepath"
	"strings"
)

// MaxNodeNameLen is the longest node name.
const MaxNodeNameLen = 64

// The CA's file names in a certificate directory.
const (
	CAFile    = "ca.pem"
	CAKeyFile = "ca-key.pem"
)

// keySuffix ends the name of every private key file.
const keySuffix = "-key"

// ValidateNodeName reports whether name can be a node's identity: 1 to 64
// characters of a-z, 0-9 and '-'. Two names are reserved because their files
// would collide with others in a certificate directory: "ca" (the CA's
// files) and any name ending in "-key" (node "x-key".pem is node "x"'s key).
func ValidateNodeName(name string) error {
	switch {
	case name == "":
		return fmt.Errorf("node name is empty")
	case len(name) > MaxNodeNameLen:
		return fmt.Errorf("node name %q is %d characters, at most %d", name, len(name), MaxNodeNameLen)
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
			return fmt.Errorf("node name %q: character %q at %d is not one of a-z, 0-9, '-'", name, rune(c), i)
		}
	}
	switch {
	case name == "ca":
		return fmt.Errorf("node name %q is reserved for the CA's files", name)
	case strings.HasSuffix(name, keySuffix):
		return fmt.Errorf("node name %q ends in %q, reserved for key files", name, keySuffix)
	}
	return nil
}

// NodeFiles names the files of node in a directory written by GenerateDev:
// dir/ca.pem, dir/<node>.pem and dir/<node>-key.pem.
func NodeFiles(dir, node string) Files {
	return Files{
		CA:   filepath.Join(dir, CAFile),
		Cert: filepath.Join(dir, node+".pem"),
		Key:  filepath.Join(dir, node+keySuffix+".pem"),
	}
}
