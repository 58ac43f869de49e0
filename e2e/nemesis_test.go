package e2e

import (
	"os"
	"strings"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/nemesis"
)

// The short nemesis run of make test (make nemesis runs longer ones): four server processes with
// their stores under the key-value workload while replicas are killed with SIGKILL and restarted,
// paused, cut off (by the replica and, as root, in the kernel with tc), slowed and made lossy, and the whole cluster loses power once. The history
// must be linearizable, every acknowledged write present on every replica, every replica at one
// height with one chain digest, and no process left.
func TestNemesisShort(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries")
	}
	var out strings.Builder
	res, err := nemesis.Run(nemesis.Options{N: 4, Seed: 7, Duration: 90 * time.Second, Algorithm: "s-hs",
		BinDir: binDir, Dir: t.TempDir(), Out: &out})
	require.NoError(t, err)
	t.Log(out.String())
	if !res.OK() {
		_, _ = os.Stderr.WriteString(out.String())
	}
	require.True(t, res.OK(), "%v", res.Problems)
	require.Positive(t, res.Ops)
	require.Positive(t, res.Sentinels)
	require.Greater(t, res.Incarnations, 4, "replicas were restarted")
	if os.Geteuid() == 0 {
		// As root (CI) the run has its network namespace, and seed 7's schedule cuts links there.
		require.Positive(t, res.KernelCuts, "no link was cut in the kernel")
	}
}
