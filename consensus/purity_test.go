package consensus_test

import (
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/stretchr/testify/require"
)

// corePackages must stay deterministic state machines (docs/design.md §1.1): no I/O, no network, no
// goroutines, no wall clock, no locks, and no knowledge of the driver or the transports.
var corePackages = []string{"consensus", "hotstuff", "streamlet", "mempool", "byzantine", "replica/core"}

var forbiddenImports = map[string]string{
	"net":         "network access",
	"net/http":    "network access",
	"os":          "file and process access",
	"crypto/rand": "randomness no seed fixes (Env.Rand is the core's)",
	"github.com/stratusbft/stratus/transport": "the core must not know the transports",
	"github.com/stratusbft/stratus/replica":   "the core must not know its driver",
	"github.com/stratusbft/stratus/api":       "the core must not know the HTTP API",
	"github.com/stratusbft/stratus/simnet":    "the core must not know the simulator",
}

var forbiddenCalls = map[string]map[string]bool{
	"time": {"Now": true, "Sleep": true, "After": true, "AfterFunc": true, "Tick": true, "NewTimer": true, "NewTicker": true, "Since": true, "Until": true},
	"sync": {"Mutex": true, "RWMutex": true, "WaitGroup": true, "Cond": true},
}

// coreFiles is every non-test file the purity rules apply to.
func coreFiles(t *testing.T, root string) []string {
	t.Helper()
	var out []string
	for _, pkg := range corePackages {
		files, err := filepath.Glob(filepath.Join(root, pkg, "*.go"))
		require.NoError(t, err)
		for _, path := range files {
			if !strings.HasSuffix(path, "_test.go") {
				out = append(out, path)
			}
		}
	}
	return out
}

func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	require.NoError(t, err)
	return filepath.Dir(dir)
}

// TestCoreIsPure parses every non-test file of the core packages and fails on a forbidden import,
// a go statement, a wall-clock call or a lock.
func TestCoreIsPure(t *testing.T) {
	root := repoRoot(t)
	fset := token.NewFileSet()
	checked := 0
	for _, path := range coreFiles(t, root) {
		f, err := parser.ParseFile(fset, path, nil, 0)
		require.NoError(t, err)
		checked++
		aliases := map[string]string{}
		for _, imp := range f.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			if why, bad := forbiddenImports[p]; bad {
				t.Errorf("%s imports %s: %s", fset.Position(imp.Pos()), p, why)
			}
			name := filepath.Base(p)
			if imp.Name != nil {
				name = imp.Name.Name
			}
			aliases[name] = p
		}
		ast.Inspect(f, func(n ast.Node) bool {
			switch n := n.(type) {
			case *ast.GoStmt:
				t.Errorf("%s: go statement in the core", fset.Position(n.Pos()))
			case *ast.SelectorExpr:
				if id, ok := n.X.(*ast.Ident); ok {
					if bad := forbiddenCalls[aliases[id.Name]]; bad[n.Sel.Name] {
						t.Errorf("%s: %s.%s in the core", fset.Position(n.Pos()), aliases[id.Name], n.Sel.Name)
					}
				}
			}
			return true
		})
	}
	require.Greater(t, checked, 8, "the purity check found too few files; did the layout change?")
}

// TestCoreDependencies checks the transitive imports with go list: the core may reach neither
// net/http nor the driver-side packages through any path.
func TestCoreDependencies(t *testing.T) {
	if _, err := exec.LookPath("go"); err != nil {
		t.Skip("go command not available")
	}
	root := repoRoot(t)
	args := []string{"list", "-deps"}
	for _, p := range corePackages {
		args = append(args, "./"+p)
	}
	cmd := exec.Command("go", args...)
	cmd.Dir = root
	out, err := cmd.Output()
	require.NoError(t, err)
	deps := strings.Fields(string(out))
	require.Contains(t, deps, "github.com/stratusbft/stratus/consensus")
	for _, d := range deps {
		switch d {
		case "net/http", "github.com/stratusbft/stratus/transport", "github.com/stratusbft/stratus/replica",
			"github.com/stratusbft/stratus/api", "github.com/stratusbft/stratus/simnet":
			t.Errorf("a core package depends on %s", d)
		}
	}
}
