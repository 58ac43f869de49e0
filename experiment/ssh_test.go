package experiment

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestSSHBackendNamesWhatIsMissing: the ssh backend needs a cluster (ssh.settings or -ssh) and
// refuses a point larger than the cluster its settings describe, naming both sizes, before it
// touches a host. (It runs for real on the namespace cluster of make deploy-test, step 9b.)
func TestSSHBackendNamesWhatIsMissing(t *testing.T) {
	s, err := Parse([]byte(`{"name": "x", "protocols": ["s-hs"], "n": [4], "load": {"rates": [1000]}, "duration": "2s"}`))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Run(context.Background(), s, Options{Out: t.TempDir(), Backend: "ssh", Log: io.Discard, NoPlots: true})
	if err == nil || !strings.Contains(err.Error(), "ssh.settings") {
		t.Fatalf("no cluster named: %v", err)
	}

	// A cluster of 2 replicas whose hosts are never reached: the point of 4 fails first.
	dir := t.TempDir()
	for name, data := range map[string]string{
		"settings.sh": "REMOTE_USER=nobody\nSSH_IDENTITY=\n",
		"pub_ips.txt": "192.0.2.1\n192.0.2.2\n",
		"ips.txt":     "192.0.2.1\n192.0.2.2\n",
		"clients.txt": "192.0.2.3\n",
	} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := Run(context.Background(), s, Options{Out: t.TempDir(), Backend: "ssh", SSH: filepath.Join(dir, "settings.sh"),
		Deploy: "../deploy", Log: io.Discard, NoPlots: true})
	if err != nil {
		t.Fatal(err)
	}
	if len(rep.Rows) != 1 || !strings.Contains(rep.Rows[0].Error, "has 2 replicas; this point needs 4") {
		t.Fatalf("rows %+v", rep.Rows)
	}
}
