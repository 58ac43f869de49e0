package benchmark

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strconv"
	"sync"
	"testing"

	"github.com/stratusbft/stratus/types"
)

// fakeReplica implements the server's side of POST /txs?wait=commit: it decodes the batch, checks
// every transaction is new and of the expected size, and answers with a commit notice at once.
// respond, when set, replaces the answer (the batch has been decoded and counted already).
type fakeReplica struct {
	t       *testing.T
	srv     *httptest.Server
	size    int
	respond func(w http.ResponseWriter, r *http.Request)

	mu       sync.Mutex
	txs      int
	requests int
	dups     int
	badSize  int
	badQuery int
	conns    int
}

// seenIDs is shared by the replicas of one test so that duplicates across replicas are caught.
type seenIDs struct {
	mu  sync.Mutex
	ids map[types.Hash]bool
}

func newFakeReplica(t *testing.T, size int, shared *seenIDs) *fakeReplica {
	t.Helper()
	f := &fakeReplica{t: t, size: size}
	f.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.serve(w, r, shared)
	}))
	f.srv.Config.ConnState = func(_ net.Conn, s http.ConnState) {
		if s == http.StateNew {
			f.mu.Lock()
			f.conns++
			f.mu.Unlock()
		}
	}
	f.srv.Start()
	t.Cleanup(f.srv.Close)
	return f
}

func (f *fakeReplica) serve(w http.ResponseWriter, r *http.Request, shared *seenIDs) {
	if r.Method != http.MethodPost || r.URL.Path != "/txs" {
		http.NotFound(w, r)
		return
	}
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return
	}
	txs, err := types.DecodeBatch(body, 1<<20, types.MaxTxSize)
	if err != nil {
		writeJSON(w, http.StatusBadRequest, map[string]any{"error": err.Error()})
		return
	}
	f.mu.Lock()
	f.requests++
	if r.URL.Query().Get("wait") != "commit" {
		f.badQuery++
	}
	for _, tx := range txs {
		if tx.Size() != f.size {
			f.badSize++
		}
		if shared != nil {
			shared.mu.Lock()
			if shared.ids[tx.ID()] {
				f.dups++
			}
			shared.ids[tx.ID()] = true
			shared.mu.Unlock()
		}
	}
	f.txs += len(txs)
	f.mu.Unlock()
	if f.respond != nil {
		f.respond(w, r)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"accepted": len(txs), "delivered": true, "view": 3, "height": 2, "block": "abcd",
	})
}

func (f *fakeReplica) target(id int) Target {
	return Target{ID: id, Addr: f.srv.Listener.Addr().String()}
}

func (f *fakeReplica) stats() (txs, requests, dups, badSize, badQuery, conns int) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.txs, f.requests, f.dups, f.badSize, f.badQuery, f.conns
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func newSeen() *seenIDs { return &seenIDs{ids: make(map[types.Hash]bool)} }

func itoa(i int) string { return strconv.Itoa(i) }
