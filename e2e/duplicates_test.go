package e2e

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/stratusbft/stratus/api"
	"github.com/stretchr/testify/require"
)

// TestDuplicatePutsAreAnswered: several submitters retry the same writes (the same keys, empty
// bodies and one Idempotency-Key per key), over and over, with and without wait=commit, to one
// replica of server -sim. Every request is answered 200 with how many transactions were accepted
// and how many were duplicates; in the end the replica delivered exactly what it accepted, and
// accepted + duplicates is what was sent. (Without the header every PUT is a write of its own:
// TestPutIsACommand.)
func TestDuplicatePutsAreAnswered(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries")
	}
	for _, alg := range []string{"hotstuff", "s-hs"} {
		t.Run(alg, func(t *testing.T) {
			dir := t.TempDir()
			urls := writeCluster(t, dir, nil)
			srv := startServer(t, dir, alg)
			node := urls[0]

			const submitters, keys, rounds = 4, 40, 3
			var accepted, duplicates, sent atomic.Int64
			client := &http.Client{Timeout: 30 * time.Second}
			var wg sync.WaitGroup
			errs := make(chan error, submitters)
			for s := 0; s < submitters; s++ {
				wg.Add(1)
				go func(s int) {
					defer wg.Done()
					for r := 0; r < rounds; r++ {
						for k := 0; k < keys; k++ {
							key := (k + s*keys/submitters) % keys // overlapping, in different orders
							url := fmt.Sprintf("%s/key%d", node, key)
							if (k+r+s)%2 == 0 {
								url += "?wait=commit"
							}
							req, err := http.NewRequest(http.MethodPut, url, nil)
							if err != nil {
								errs <- err
								return
							}
							req.Header.Set(api.IdempotencyKeyHeader, fmt.Sprintf("write-key%d", key))
							resp, err := client.Do(req)
							if err != nil {
								errs <- err
								return
							}
							body, _ := io.ReadAll(resp.Body)
							resp.Body.Close()
							if resp.StatusCode != http.StatusOK {
								errs <- fmt.Errorf("PUT %s: %d %s", url, resp.StatusCode, body)
								return
							}
							var ans struct {
								Accepted   *int `json:"accepted"`
								Duplicates *int `json:"duplicates"`
							}
							if len(body) == 0 { // without wait: the counts are in headers
								a, errA := strconv.Atoi(resp.Header.Get(api.AcceptedHeader))
								d, errD := strconv.Atoi(resp.Header.Get(api.DuplicatesHeader))
								if errA != nil || errD != nil {
									errs <- fmt.Errorf("PUT %s: an answer without body lacks the count headers: %v", url, resp.Header)
									return
								}
								ans.Accepted, ans.Duplicates = &a, &d
							} else if err := json.Unmarshal(body, &ans); err != nil || ans.Accepted == nil || ans.Duplicates == nil {
								errs <- fmt.Errorf("PUT %s: answer %s lacks accepted or duplicates", url, body)
								return
							}
							sent.Add(1)
							accepted.Add(int64(*ans.Accepted))
							duplicates.Add(int64(*ans.Duplicates))
						}
					}
				}(s)
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				require.NoError(t, err)
			}
			require.EqualValues(t, submitters*keys*rounds, sent.Load())
			require.Equal(t, sent.Load(), accepted.Load()+duplicates.Load(), "nothing unaccounted")
			require.EqualValues(t, keys, accepted.Load(), "each distinct transaction is accepted once")

			var snap struct {
				CommittedTx    int64 `json:"committed_tx"`
				DuplicateTx    int64 `json:"duplicate_tx"`
				SubmittedTx    int64 `json:"submitted_tx"`
				SubmittedDupTx int64 `json:"submitted_duplicate_tx"`
				RefusedSubmits int64 `json:"refused_submissions"`
			}
			require.Eventually(t, func() bool {
				resp, err := http.Get(node + "/query?format=json")
				if err != nil {
					return false
				}
				defer resp.Body.Close()
				return json.NewDecoder(resp.Body).Decode(&snap) == nil && snap.CommittedTx >= accepted.Load()
			}, 20*time.Second, 20*time.Millisecond, "accepted transactions are delivered")
			time.Sleep(300 * time.Millisecond) // nothing more may be delivered
			require.NoError(t, json.Unmarshal(get(t, node+"/query?format=json"), &snap))
			require.Equal(t, accepted.Load(), snap.CommittedTx, "accepted == delivered")
			require.Zero(t, snap.DuplicateTx, "no transaction was ordered twice")
			require.Equal(t, accepted.Load(), snap.SubmittedTx)
			require.Equal(t, duplicates.Load(), snap.SubmittedDupTx)
			require.Zero(t, snap.RefusedSubmits)
			require.Contains(t, string(get(t, node+"/query")), fmt.Sprintf("Duplicate txs answered: %d\n", duplicates.Load()))
			stopServer(t, srv)
		})
	}
}
