// Package experiments carries the experiment specs of this directory (paper/ holds the paper's
// figures) inside the binaries, so that server -virtual -scenario NAME and stratus-exp NAME find
// them by name without the source tree. The specs themselves are documented in README.md.
package experiments

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

//go:embed *.json paper/*.json
var files embed.FS

// aliases are the names server -virtual -scenario took before the scenarios became specs.
var aliases = map[string]string{
	"batch":           "fig5-batch",
	"scalability-lan": "fig6-scalability-lan",
	"scalability-wan": "fig6-scalability-wan",
	"async":           "fig7-async",
	"byzantine":       "fig8-byzantine",
	"zipf":            "fig9-10-zipf",
	"bandwidth":       "table3-bandwidth",
}

// index maps each spec's name (its file name without .json) to its path in this directory.
func index() map[string]string {
	out := map[string]string{}
	_ = fs.WalkDir(files, ".", func(p string, d fs.DirEntry, err error) error {
		if err == nil && !d.IsDir() && strings.HasSuffix(p, ".json") {
			out[strings.TrimSuffix(path.Base(p), ".json")] = p
		}
		return nil
	})
	return out
}

// Names lists the specs, sorted.
func Names() []string {
	var out []string
	for name := range index() {
		out = append(out, name)
	}
	sort.Strings(out)
	return out
}

// Lookup returns the spec called name (or by an earlier scenario name) and its path relative to
// the repository's root, e.g. experiments/paper/fig5-batch.json.
func Lookup(name string) (data []byte, file string, err error) {
	if a, ok := aliases[name]; ok {
		name = a
	}
	p, ok := index()[name]
	if !ok {
		return nil, "", fmt.Errorf("no experiment spec called %q: want one of %s (or a spec file)", name, strings.Join(Names(), ", "))
	}
	data, err = files.ReadFile(p)
	return data, path.Join("experiments", p), err
}
