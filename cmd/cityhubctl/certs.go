package main

import (
	"errors"
	"fmt"
	"io/fs"
	"path/filepath"
	"slices"
	"time"

	"github.com/spf13/cobra"

	"github.com/cityhub/cityhub/federation/certs"
)

func (a *app) certsCmd() *cobra.Command {
	c := &cobra.Command{
		Use:   "certs",
		Short: "Make the mutual TLS certificates nodes use between tiers (works offline)",
	}
	c.AddCommand(a.certsCreateCmd())
	return c
}

func (a *app) certsCreateCmd() *cobra.Command {
	var (
		dir   string
		opts  certs.DevOptions
		valid string
	)
	c := &cobra.Command{
		Use:   "create --dir DIR [--host H]... NODE...",
		Short: "Write a development CA and a certificate and key for each node",
		Long: `Write into DIR a development CA (ca.pem, ca-key.pem) and, signed by it, a
certificate and key for each NODE (NODE.pem, NODE-key.pem): ECDSA P-256,
CommonName the node name, valid for server and client authentication on the
node name, localhost, 127.0.0.1, ::1 and every --host.

A CA already in DIR is reused, so nodes can be added later. Existing node
files are left alone unless --force. The CA key is unencrypted: for
development and tests.`,
		Example: `  cityhubctl certs create --dir data/certs city d-320505 s-320505001
  cityhubctl certs create --dir data/certs --host 10.0.0.2 --host node2.example.org d-320506`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(_ *cobra.Command, nodes []string) error {
			// Bad names and flags are usage errors (exit 2): checked before
			// the command's own work starts.
			for _, n := range nodes {
				if err := certs.ValidateNodeName(n); err != nil {
					return usagef("%v", err)
				}
			}
			if valid != "" {
				d, err := parseDuration(valid)
				if err != nil || d <= 0 {
					return usagef("--validity %q: want a positive duration such as 365d or 720h", valid)
				}
				opts.Validity = d
			}
			a.running = true
			var wrote []string
			opts.Wrote = func(p string) { wrote = append(wrote, p) }
			err := certs.GenerateDev(dir, nodes, opts)
			caPath := filepath.Join(dir, certs.CAFile)
			if err == nil && !slices.Contains(wrote, caPath) {
				fmt.Fprintf(a.stdout, "using CA %s\n", caPath)
			}
			for _, p := range wrote {
				fmt.Fprintf(a.stdout, "wrote %s\n", p)
			}
			if errors.Is(err, fs.ErrExist) {
				return fmt.Errorf("%w\n--force replaces them", err)
			}
			return err
		},
	}
	f := c.Flags()
	f.StringVar(&dir, "dir", "", "directory of the CA and node files (made 0700 if missing)")
	f.StringSliceVar(&opts.Hosts, "host", nil, "extra DNS name or IP address the node certificates are valid for (repeatable)")
	f.StringVar(&valid, "validity", "", fmt.Sprintf("validity of the node certificates, e.g. 90d or 720h (default %dd)", certs.DefaultValidity/(24*time.Hour)))
	f.BoolVar(&opts.Force, "force", false, "replace existing node certificates and keys")
	_ = c.MarkFlagRequired("dir")
	return c
}
