package main

import (
	"errors"
	"fmt"
	"os"
	"strings"

	"github.com/stratusbft/stratus/config"
)

// migrateConfig converts the original prototype's config file at path: the new config goes to
// stdout, or to outPath (never overwritten), and each change with its reason to stderr. ips.txt
// gives N for the values that depend on it when it was given or exists.
func migrateConfig(path, ipsPath string, ipsGiven bool, outPath string) int {
	data, err := os.ReadFile(path)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: -migrate-config: %v\n", err)
		return 2
	}
	n := 0
	hosts, err := config.ReadIPs(ipsPath)
	switch {
	case err == nil:
		n = len(hosts)
	case ipsGiven || !errors.Is(err, os.ErrNotExist):
		fmt.Fprintf(os.Stderr, "server: %v\n", err)
		return 2
	}
	out, changes, err := config.Migrate(data, n)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: -migrate-config %s: %s\n", path, strings.ReplaceAll(err.Error(), "\n", "\n  "))
		return 2
	}
	for _, c := range changes {
		fmt.Fprintf(os.Stderr, "%s\n", c)
	}
	if n == 0 {
		fmt.Fprintf(os.Stderr, "values that depend on the replica count were checked for %d replicas (%s not found); check again with server -check-config\n", config.MigrateNodes, ipsPath)
	} else {
		fmt.Fprintf(os.Stderr, "values that depend on the replica count were checked for the %d replicas of %s\n", n, ipsPath)
	}
	if outPath == "" {
		if _, err := os.Stdout.Write(out); err != nil {
			fmt.Fprintf(os.Stderr, "server: %v\n", err)
			return 1
		}
		return 0
	}
	f, err := os.OpenFile(outPath, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		fmt.Fprintf(os.Stderr, "server: -out: %v (an existing file is never overwritten)\n", err)
		return 2
	}
	if _, err := f.Write(out); err != nil {
		f.Close()
		fmt.Fprintf(os.Stderr, "server: -out: %v\n", err)
		return 1
	}
	if err := f.Close(); err != nil {
		fmt.Fprintf(os.Stderr, "server: -out: %v\n", err)
		return 1
	}
	fmt.Fprintf(os.Stderr, "wrote %s\n", outPath)
	return 0
}
