package api

import (
	"context"
	"embed"
	"encoding/json"
	"fmt"
	"io"
	"io/fs"
	"net/http"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/stratusbft/stratus/types"
)

// The dashboard's page, script, style and charting library (uPlot, see dashboard/README.md) are
// compiled in: the page works offline and needs no build step.
//
//go:embed dashboard
var dashboardFiles embed.FS

var dashboardFS = func() fs.FS {
	sub, err := fs.Sub(dashboardFiles, "dashboard")
	if err != nil {
		panic(err) // the directory is embedded above
	}
	return sub
}()

// Peer stats are asked with a short timeout; an answer younger than peerFresh is reused, so any
// number of open dashboards cost each peer at most a few requests per second.
const (
	peerTimeout    = 800 * time.Millisecond
	peerFresh      = 500 * time.Millisecond
	peerMaxBody    = 4 << 20
	clusterTimeout = 2 * time.Second
)

// NodeStatus is one replica in /cluster.json: its statistics, or up false and why not.
type NodeStatus struct {
	Node  types.NodeID    `json:"node"`
	URL   string          `json:"url"`
	Self  bool            `json:"self,omitempty"`
	Up    bool            `json:"up"`
	Error string          `json:"error,omitempty"`
	Stats json.RawMessage `json:"stats,omitempty"` // a NodeStats
}

// ClusterResponse is the answer of GET /cluster.json: this node's snapshot and each peer's.
type ClusterResponse struct {
	Self  types.NodeID `json:"self"`
	N     int          `json:"n"`
	Time  time.Time    `json:"time"`
	Nodes []NodeStatus `json:"nodes"`
}

// peer is a replica whose /stats the cluster view asks. At most one request per peer is in flight:
// callers arriving meanwhile wait for its answer, so a hanging peer cannot pile up goroutines.
type peer struct {
	id     types.NodeID
	url    string
	client *http.Client

	mu   sync.Mutex
	cur  *peerFetch // the request in flight, nil when none
	last NodeStatus
	at   time.Time // when last was stored
}

type peerFetch struct {
	done chan struct{}
	res  NodeStatus
}

// status returns the peer's latest status: a fresh stored one, the answer of the request in
// flight, or of a new request. ctx bounds only the wait.
func (p *peer) status(ctx context.Context) NodeStatus {
	p.mu.Lock()
	if !p.at.IsZero() && time.Since(p.at) < peerFresh {
		st := p.last
		p.mu.Unlock()
		return st
	}
	f := p.cur
	if f == nil {
		f = &peerFetch{done: make(chan struct{})}
		p.cur = f
		go p.fetch(f)
	}
	p.mu.Unlock()
	select {
	case <-f.done:
		return f.res
	case <-ctx.Done():
		return NodeStatus{Node: p.id, URL: p.url, Error: "no answer in time"}
	}
}

func (p *peer) fetch(f *peerFetch) {
	ctx, cancel := context.WithTimeout(context.Background(), peerTimeout)
	defer cancel()
	f.res = p.get(ctx)
	p.mu.Lock()
	p.last, p.at, p.cur = f.res, time.Now(), nil
	p.mu.Unlock()
	close(f.done)
}

func (p *peer) get(ctx context.Context) NodeStatus {
	st := NodeStatus{Node: p.id, URL: p.url}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.url+"/stats", nil)
	if err != nil {
		st.Error = err.Error()
		return st
	}
	resp, err := p.client.Do(req)
	if err != nil {
		st.Error = shortError(err)
		return st
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, peerMaxBody+1))
	switch {
	case err != nil:
		st.Error = "reading the answer: " + shortError(err)
	case resp.StatusCode != http.StatusOK:
		st.Error = fmt.Sprintf("GET /stats answered %s", resp.Status)
	case len(body) > peerMaxBody:
		st.Error = "answer too large"
	case !json.Valid(body):
		st.Error = "answer is not JSON"
	default:
		st.Up, st.Stats = true, json.RawMessage(body)
	}
	return st
}

// shortError names the cause of a failed request without repeating the URL.
func shortError(err error) string {
	switch msg := err.Error(); {
	case strings.Contains(msg, "connection refused"):
		return "connection refused"
	case strings.Contains(msg, "deadline exceeded") || strings.Contains(msg, "Client.Timeout") ||
		strings.Contains(msg, "timeout awaiting response headers"): // which of the timeouts fires first depends on the load
		return "no answer within " + peerTimeout.String()
	default:
		return msg
	}
}

// dashboard serves the page, its assets and the cluster view.
type dashboard struct {
	self  types.NodeID
	stats func() NodeStats // this node's
	peers []*peer          // the other replicas, by ID
	files http.Handler
}

func newDashboard(self types.NodeID, stats func() NodeStats, addrs map[types.NodeID]string) *dashboard {
	d := &dashboard{self: self, stats: stats, files: http.FileServer(http.FS(dashboardFS))}
	client := &http.Client{Timeout: peerTimeout, Transport: &http.Transport{
		MaxIdleConnsPerHost: 2, IdleConnTimeout: 30 * time.Second, ResponseHeaderTimeout: peerTimeout,
	}}
	for id, addr := range addrs {
		if id == self {
			continue
		}
		url := addr
		if !strings.Contains(url, "://") {
			url = "http://" + url
		}
		d.peers = append(d.peers, &peer{id: id, url: strings.TrimRight(url, "/"), client: client})
	}
	sort.Slice(d.peers, func(i, j int) bool { return d.peers[i].id < d.peers[j].id })
	return d
}

// cluster answers GET /cluster.json: the peers are asked in parallel, each bounded by peerTimeout.
func (d *dashboard) cluster(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), clusterTimeout)
	defer cancel()
	snap := d.stats()
	self, err := json.Marshal(snap)
	if err != nil {
		writeError(w, http.StatusInternalServerError, err.Error(), "internal")
		return
	}
	resp := ClusterResponse{Self: d.self, N: snap.N, Time: time.Now().UTC()}
	nodes := make([]NodeStatus, len(d.peers))
	var wg sync.WaitGroup
	for i, p := range d.peers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			nodes[i] = p.status(ctx)
		}()
	}
	wg.Wait()
	resp.Nodes = append(nodes, NodeStatus{Node: d.self, Self: true, Up: true, Stats: self})
	sort.Slice(resp.Nodes, func(i, j int) bool { return resp.Nodes[i].Node < resp.Nodes[j].Node })
	writeJSON(w, http.StatusOK, resp)
}

// page serves GET / and GET /dashboard/{asset}.
func (d *dashboard) page(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Cache-Control", "no-cache")
	if r.URL.Path == "/" {
		b, err := fs.ReadFile(dashboardFS, "index.html")
		if err != nil {
			writeError(w, http.StatusInternalServerError, err.Error(), "internal")
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if r.Method != http.MethodHead {
			_, _ = w.Write(b)
		}
		return
	}
	name := strings.TrimPrefix(r.URL.Path, "/dashboard/")
	if name == "" || name == "index.html" || !fs.ValidPath(name) {
		s404(w, r)
		return
	}
	if _, err := fs.Stat(dashboardFS, name); err != nil {
		s404(w, r)
		return
	}
	r2 := r.Clone(r.Context())
	r2.URL.Path = "/" + name
	d.files.ServeHTTP(w, r2)
}

func s404(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, fmt.Sprintf("no dashboard asset %s", r.URL.Path), "not_found")
}
