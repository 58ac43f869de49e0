package config

import (
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// TestScriptsListTheNames: the protocol and strategy lists written into the scripts (defaults and
// usage lines) are exactly the names this package defines, so a protocol or strategy added here
// and forgotten there, or a typo there, fails.
func TestScriptsListTheNames(t *testing.T) {
	root := filepath.Join("..")
	words := func(s string) []string {
		f := strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' || r == '"' })
		out := f[:0]
		for _, w := range f {
			if w != "(default)" {
				out = append(out, w)
			}
		}
		return slices.Sorted(slices.Values(out))
	}
	sorted := func(xs []string) []string { return slices.Sorted(slices.Values(xs)) }
	for _, c := range []struct {
		file string
		re   string
		want []string
	}{
		{"bin/byzantine.sh", `(?m)^strategies="([^"]*)"`, Strategies},
		{"bin/sweep.sh", `(?m)^protocols="([^"]*)"`, PresetNames()},
		{"bin/run.sh", `(?m)^#\s+algorithm: ([^;]*);`, PresetNames()},
		{"bin/simulation.sh", `(?m)^#\s+algorithm: ([^;]*);`, PresetNames()},
		{"deploy/settings.sh", `(?m)^ALGORITHM=.*#\s*(.*)$`, PresetNames()},
	} {
		data, err := os.ReadFile(filepath.Join(root, c.file))
		require.NoError(t, err)
		m := regexp.MustCompile(c.re).FindSubmatch(data)
		require.NotNil(t, m, "%s: no line matches %s", c.file, c.re)
		require.Equal(t, sorted(c.want), words(string(m[1])), "%s lists other names than package config", c.file)
	}
}
