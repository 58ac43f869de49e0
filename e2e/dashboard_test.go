package e2e

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/stratusbft/stratus/types"
)

// chromium finds the headless browser: $STRATUS_CHROMIUM, or chromium / chromium-browser /
// google-chrome on PATH or in /usr/bin. Without one the test skips, unless
// STRATUS_REQUIRE_BROWSER is set (CI sets it): then it fails.
func chromium(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STRATUS_CHROMIUM"); p != "" {
		return p
	}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "/usr/bin/chromium"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	if os.Getenv("STRATUS_REQUIRE_BROWSER") != "" {
		t.Fatal("STRATUS_REQUIRE_BROWSER is set but no chromium was found (apt-get install chromium chromium-driver)")
	}
	t.Skip("no chromium found (apt-get install chromium); set STRATUS_REQUIRE_BROWSER=1 to make this a failure")
	return ""
}

// artifactDir is where the browser test keeps its screenshots: $STRATUS_ARTIFACTS, or
// e2e/artifacts (ignored by git).
func artifactDir(t *testing.T) string {
	t.Helper()
	dir := os.Getenv("STRATUS_ARTIFACTS")
	if dir == "" {
		dir = "artifacts"
	}
	dir, err := filepath.Abs(dir)
	require.NoError(t, err)
	require.NoError(t, os.MkdirAll(dir, 0o755))
	return dir
}

// chromedriver finds chromedriver next to chromium, with the same skip/require rule.
func chromedriver(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("STRATUS_CHROMEDRIVER"); p != "" {
		return p
	}
	if p, err := exec.LookPath("chromedriver"); err == nil {
		return p
	}
	if os.Getenv("STRATUS_REQUIRE_BROWSER") != "" {
		t.Fatal("STRATUS_REQUIRE_BROWSER is set but chromedriver was not found (apt-get install chromium-driver)")
	}
	t.Skip("no chromedriver found (apt-get install chromium-driver); set STRATUS_REQUIRE_BROWSER=1 to make this a failure")
	return ""
}

// browser is a headless chromium session driven by chromedriver over WebDriver (W3C) HTTP.
type browser struct {
	base string // the session's URL
	http *http.Client
}

func newBrowser(t *testing.T) *browser {
	t.Helper()
	exe := chromium(t)
	driver := chromedriver(t)
	port := freePorts(t, 1)[0]
	cmd := exec.Command(driver, fmt.Sprintf("--port=%d", port))
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	logf, err := os.Create(filepath.Join(t.TempDir(), "chromedriver.log"))
	require.NoError(t, err)
	cmd.Stdout, cmd.Stderr = logf, logf
	require.NoError(t, cmd.Start())
	t.Cleanup(func() {
		_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
		_ = cmd.Wait()
		logf.Close()
	})
	root := fmt.Sprintf("http://127.0.0.1:%d", port)
	b := &browser{http: &http.Client{Timeout: 60 * time.Second}}
	require.Eventually(t, func() bool {
		resp, err := b.http.Get(root + "/status")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}, 15*time.Second, 50*time.Millisecond, "chromedriver did not start")
	caps := map[string]any{"capabilities": map[string]any{"alwaysMatch": map[string]any{
		"browserName": "chrome",
		"goog:chromeOptions": map[string]any{
			"binary": exe,
			// root in a container: no sandbox; no GPU; /dev/shm may be small.
			"args": []string{"--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage", "--window-size=1440,1500"},
		},
		"goog:loggingPrefs": map[string]any{"browser": "ALL"},
	}}}
	var sess struct {
		SessionID string `json:"sessionId"`
	}
	b.call(t, http.MethodPost, root+"/session", caps, &sess)
	require.NotEmpty(t, sess.SessionID)
	b.base = root + "/session/" + sess.SessionID
	t.Cleanup(func() {
		req, _ := http.NewRequest(http.MethodDelete, b.base, nil)
		if resp, err := b.http.Do(req); err == nil {
			resp.Body.Close()
		}
	})
	return b
}

// call does one WebDriver request and decodes its "value" into out.
func (b *browser) call(t *testing.T, method, url string, body, out any) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		j, err := json.Marshal(body)
		require.NoError(t, err)
		rd = bytes.NewReader(j)
	}
	req, err := http.NewRequest(method, url, rd)
	require.NoError(t, err)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.http.Do(req)
	require.NoError(t, err, "%s %s", method, url)
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	require.NoError(t, err)
	require.Equal(t, http.StatusOK, resp.StatusCode, "%s %s: %s", method, url, raw)
	var env struct {
		Value json.RawMessage `json:"value"`
	}
	require.NoError(t, json.Unmarshal(raw, &env), "%s", raw)
	if env.Value != nil && string(env.Value) != "null" && out != nil {
		require.NoError(t, json.Unmarshal(env.Value, out), "%s", raw)
	}
}

func (b *browser) navigate(t *testing.T, url string) {
	t.Helper()
	b.call(t, http.MethodPost, b.base+"/url", map[string]any{"url": url}, nil)
}

// eval runs the JS expression js in the page and decodes its value into out.
func (b *browser) eval(t *testing.T, js string, out any) {
	t.Helper()
	b.call(t, http.MethodPost, b.base+"/execute/sync", map[string]any{"script": "return (" + js + ");", "args": []any{}}, out)
}

// waitJS polls a JS condition until it is true.
func (b *browser) waitJS(t *testing.T, js string, within time.Duration, what string) {
	t.Helper()
	deadline := time.Now().Add(within)
	for {
		var ok bool
		b.eval(t, js, &ok)
		if ok {
			return
		}
		if time.Now().After(deadline) {
			var row string
			b.eval(t, `document.querySelector("#replicas tbody") ? document.querySelector("#replicas tbody").innerText : ""`, &row)
			t.Fatalf("%s: not within %v; table:\n%s", what, within, row)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// onNewDocument has chromium run js in every page loaded from now on, before the page's own
// scripts (DevTools Page.addScriptToEvaluateOnNewDocument through chromedriver); it returns the
// identifier that stopOnNewDocument takes.
func (b *browser) onNewDocument(t *testing.T, js string) string {
	t.Helper()
	var res struct {
		Identifier string `json:"identifier"`
	}
	b.call(t, http.MethodPost, b.base+"/goog/cdp/execute", map[string]any{
		"cmd": "Page.addScriptToEvaluateOnNewDocument", "params": map[string]any{"source": js}}, &res)
	require.NotEmpty(t, res.Identifier)
	return res.Identifier
}

func (b *browser) stopOnNewDocument(t *testing.T, id string) {
	t.Helper()
	b.call(t, http.MethodPost, b.base+"/goog/cdp/execute", map[string]any{
		"cmd": "Page.removeScriptToEvaluateOnNewDocument", "params": map[string]any{"identifier": id}}, nil)
}

func (b *browser) screenshot(t *testing.T, name string) {
	t.Helper()
	var enc string
	b.call(t, http.MethodGet, b.base+"/screenshot", nil, &enc)
	png, err := base64.StdEncoding.DecodeString(enc)
	require.NoError(t, err)
	path := filepath.Join(artifactDir(t), name)
	require.NoError(t, os.WriteFile(path, png, 0o644))
	t.Logf("screenshot: %s", path)
}

// noErrors fails on any browser log entry of level SEVERE since the last look: console.error,
// uncaught exceptions and failed requests (a favicon 404 included).
func (b *browser) noErrors(t *testing.T) {
	t.Helper()
	var entries []struct {
		Level   string `json:"level"`
		Message string `json:"message"`
	}
	b.call(t, http.MethodPost, b.base+"/se/log", map[string]any{"type": "browser"}, &entries)
	var errs []string
	for _, e := range entries {
		if e.Level == "SEVERE" {
			errs = append(errs, e.Message)
		}
	}
	require.Empty(t, errs, "the browser logged errors")
}

// startClient runs the client against the cluster of dir in the background until the test ends.
func startClient(t *testing.T, dir string, secs int) {
	t.Helper()
	cmd := exec.Command(filepath.Join(binDir, "client"), "-duration", fmt.Sprintf("%ds", secs), "-log_dir", dir,
		"-out", filepath.Join(dir, "summary.json"))
	cmd.Dir = dir
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	require.NoError(t, cmd.Start())
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		select {
		case <-done:
		default:
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
}

const chartCount = `document.querySelectorAll(".card .uplot canvas").length`

// holdPolls, run before the dashboard's script, lets its first request of cluster.json through
// and holds the later ones until window.releasePolls() is called: the charts stay at one sample.
const holdPolls = `(() => {
  const real = window.fetch.bind(window);
  let release;
  const held = new Promise((r) => { release = r; });
  window.releasePolls = () => release();
  let n = 0;
  window.fetch = (...args) => String(args[0]).includes("cluster.json") && n++ > 0 ? held.then(() => real(...args)) : real(...args);
})()`

// chartCard is what a chart's card records of its last drawing (app.js sets these data-
// attributes): the samples drawn, the time axis in seconds and the y axis.
type chartCard struct {
	ID      string  `json:"id"`
	Samples int     `json:"samples"`
	XMin    float64 `json:"xMin"`
	XMax    float64 `json:"xMax"`
	YMin    float64 `json:"yMin"`
	YMax    float64 `json:"yMax"`
	YScale  string  `json:"yScale"`
}

const chartCards = `[...document.querySelectorAll(".card")].map((c) => ({id: c.id, samples: Number(c.dataset.samples),
  xMin: Number(c.dataset.xMin), xMax: Number(c.dataset.xMax), yMin: Number(c.dataset.yMin), yMax: Number(c.dataset.yMax),
  yScale: c.dataset.yScale || ""}))`

// legendSeries is one series of a chart's legend: its label, the colour of its marker and the
// value shown.
type legendSeries struct {
	Label string `json:"label"`
	Color string `json:"color"`
	Value string `json:"value"`
}

// legendOf reads the legend of the chart card id, the time row first.
func legendOf(id string) string {
	return `[...document.querySelectorAll("#chart-` + id + ` .u-legend .u-series")].map((r) => ({
  label: r.querySelector(".u-label").textContent, value: r.querySelector(".u-value").textContent,
  color: r.querySelector(".u-marker") ? getComputedStyle(r.querySelector(".u-marker")).borderTopColor : ""}))`
}

// kindColors reads the colour of each message type in both per-type charts, and checks that
// every type has one colour in both.
func kindColors(t *testing.T, b *browser) map[string]string {
	t.Helper()
	colors := map[string]string{}
	for _, id := range []string{"kindsent", "kindrecv"} {
		var legend []legendSeries
		b.eval(t, legendOf(id), &legend)
		require.NotEmpty(t, legend, id)
		for _, s := range legend[1:] {
			require.NotEmpty(t, s.Color, "%s: %s has no colour", id, s.Label)
			if c, ok := colors[s.Label]; ok {
				require.Equal(t, c, s.Color, "%s has another colour in %s than in the other chart", s.Label, id)
			}
			colors[s.Label] = s.Color
		}
	}
	return colors
}

const microBlockShown = `[...document.querySelectorAll("#chart-kindsent .u-legend .u-label")].some((l) => l.textContent === "MicroBlock")`

// TestDashboardInBrowser loads the dashboard of a running server -sim under client load in
// headless chromium: the charts render, the numbers change between two looks, and the console
// stays free of errors. With its first sample, every chart's time axis spans about a minute
// ending now; each message type has one colour in both per-type charts and in two page loads;
// the legends show the latest values without the mouse over them; the per-type charts are on a
// log scale that zero rates do not break, with a toggle to linear. Then, on a cluster of one process per replica (bin/run.sh), a replica
// whose process is stopped shows as down on another replica's dashboard.
func TestDashboardInBrowser(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries in a browser")
	}
	b := newBrowser(t)

	t.Run("sim under load", func(t *testing.T) {
		dir := t.TempDir()
		urls := writeCluster(t, dir, nil)
		srv := startServer(t, dir, "s-hs")
		defer stopServer(t, srv)

		// The first second: one sample per chart, the next poll held.
		hold := b.onNewDocument(t, holdPolls)
		b.navigate(t, urls[0]+"/")
		b.stopOnNewDocument(t, hold)
		b.waitJS(t, `Number(document.body.dataset.polls || 0) >= 1 && `+chartCount+` >= 12 && `+
			`[...document.querySelectorAll(".card")].every((c) => c.dataset.samples)`, 15*time.Second, "first sample drawn")
		var cards []chartCard
		b.eval(t, chartCards, &cards)
		var polls int
		b.eval(t, `Number(document.body.dataset.polls)`, &polls)
		require.Equal(t, 1, polls, "the second poll was not held")
		now := float64(time.Now().UnixNano()) / 1e9
		for _, c := range cards {
			require.Equal(t, 1, c.Samples, c.ID)
			span := c.XMax - c.XMin
			require.True(t, span >= 30 && span <= 600, "%s: with one sample the time axis spans %.0f s, not about a minute", c.ID, span)
			require.InDelta(t, now, c.XMax, 10, "%s: the time axis ends at %.0f, not now", c.ID, c.XMax)
		}
		b.screenshot(t, "dashboard-first-sample.png")
		b.eval(t, `window.releasePolls()`, nil)
		b.waitJS(t, `Number(document.body.dataset.polls || 0) >= 3`, 10*time.Second, "polls go on once released")
		before := kindColors(t, b) // the types of an idle cluster

		startClient(t, dir, 30)
		b.waitJS(t, microBlockShown, 15*time.Second, "MicroBlock traffic charted")
		time.Sleep(1500 * time.Millisecond) // the other types of a loaded cluster appear too
		first := kindColors(t, b)
		for kind, c := range before {
			require.Equal(t, c, first[kind], "%s changed colour as other types appeared", kind)
		}
		// No mouse over the charts: every legend shows the latest values, not "–".
		for _, id := range []string{"kindsent", "kindrecv"} {
			var legend []legendSeries
			b.eval(t, legendOf(id), &legend)
			require.Greater(t, len(legend), 2, id)
			for _, s := range legend {
				require.NotContains(t, []string{"", "–", "--"}, s.Value, "%s: legend of %s without a value", id, s.Label)
			}
		}
		// The per-type charts are on a log scale with zero rates among them; the toggle switches.
		b.eval(t, chartCards, &cards)
		for _, c := range cards {
			if c.ID == "chart-kindsent" || c.ID == "chart-kindrecv" {
				require.Equal(t, "log", c.YScale, c.ID)
				require.True(t, c.YMin <= 0 && c.YMax > 1e3, "%s: y axis %v..%v", c.ID, c.YMin, c.YMax)
			} else {
				require.Equal(t, "linear", c.YScale, c.ID)
			}
		}
		b.eval(t, `document.querySelector("#chart-kindsent button.scale").click()`, nil)
		b.waitJS(t, `document.querySelector("#chart-kindsent").dataset.yScale === "linear"`, 5*time.Second, "linear scale on click")
		b.eval(t, `document.querySelector("#chart-kindsent button.scale").click()`, nil)
		b.waitJS(t, `document.querySelector("#chart-kindsent").dataset.yScale === "log"`, 5*time.Second, "log scale on a second click")

		// A second page load, under load from its first sample: the same colours.
		b.navigate(t, urls[0]+"/")
		b.waitJS(t, `Number(document.body.dataset.polls || 0) >= 3 && `+chartCount+` >= 12 && `+microBlockShown, 15*time.Second, "charts drawn")
		second := kindColors(t, b)
		require.Contains(t, second, "MicroBlock")
		for kind, c := range first {
			if c2, ok := second[kind]; ok {
				require.Equal(t, c, c2, "%s has another colour after a reload", kind)
			}
		}
		seen := map[string]string{}
		for kind, c := range second {
			require.NotContains(t, seen, c, "%s and %s share a colour", kind, seen[c])
			seen[c] = kind
		}
		b.eval(t, `document.getElementById("chart-kindsent").scrollIntoView()`, nil)
		b.screenshot(t, "dashboard-types.png")
		b.eval(t, `window.scrollTo(0, 0)`, nil)

		b.waitJS(t, `document.querySelectorAll("#replicas tbody tr.up").length === 4`, 10*time.Second, "4 replicas up")
		var look1, look2 string
		committed := `[...document.querySelectorAll("#replicas tbody tr")].map(r => r.children[5].textContent).join(",")`
		b.eval(t, committed, &look1)
		time.Sleep(2500 * time.Millisecond)
		b.eval(t, committed, &look2)
		require.NotEqual(t, look1, look2, "committed transactions did not change under load")
		var tput float64
		b.eval(t, `Math.max(...[...document.querySelectorAll("#replicas tbody tr")].map(r => Number(r.children[6].textContent)))`, &tput)
		require.Greater(t, tput, 0.0, "throughput shown")
		var header string
		b.eval(t, `document.querySelector("header").innerText`, &header)
		require.Contains(t, header, "s-hs")
		time.Sleep(3 * time.Second) // a few more points on the charts for the screenshot
		b.screenshot(t, "dashboard-sim.png")
		b.navigate(t, "about:blank") // the page stops polling before the server stops
		b.noErrors(t)
	})

	t.Run("stopped replica shows as down", func(t *testing.T) {
		dir := scriptDir(t)
		urls := writeCluster(t, dir, nil)
		var servers []int
		stopAtEnd(t, dir, &servers)
		out, err := script(t, dir, "run.sh", "hotstuff")
		require.NoError(t, err, out)
		servers = pidsIn(t, filepath.Join(dir, "server.pid"))
		require.Len(t, servers, 4)
		node4 := pidOfNode(t, dir, servers, 4)

		b.navigate(t, urls[0]+"/")
		b.waitJS(t, `document.querySelectorAll("#replicas tbody tr.up").length === 4`, 15*time.Second, "4 replicas up")

		// The same 200 transactions sent twice to node 2: half of its submissions are duplicates.
		txs := make([][]byte, 200)
		for i := range txs {
			txs[i] = fmt.Appendf(nil, "dashboard-duplicate-%03d", i)
		}
		for range 2 {
			resp, err := http.Post(urls[1]+"/txs", "application/octet-stream", bytes.NewReader(types.AppendBatch(nil, txs)))
			require.NoError(t, err)
			_ = resp.Body.Close()
			require.Equal(t, http.StatusOK, resp.StatusCode)
		}
		b.waitJS(t, `(c => c && c.textContent === "50.0")(document.querySelector("#replica-2 td.dup"))`, 5*time.Second,
			"node 2's duplicate share shown as 50.0 %")
		var otherDup string
		b.eval(t, `document.querySelector("#replica-3 td.dup").textContent`, &otherDup)
		require.Equal(t, "0.0", otherDup, "node 3 was sent nothing twice")

		require.NoError(t, syscall.Kill(node4, syscall.SIGTERM))
		b.waitJS(t, `(r => r && r.dataset.up === "false" && r.children[1].textContent.startsWith("down"))(document.querySelector("#replica-4"))`,
			10*time.Second, "node 4 shown as down")
		b.waitJS(t, `document.querySelectorAll("#replicas tbody tr.up").length === 3 && document.getElementById("upcount").textContent === "3 of 4"`,
			5*time.Second, "the others still up")
		b.screenshot(t, "dashboard-down.png")
		b.navigate(t, "about:blank")
		b.noErrors(t)
	})
}

// pidOfNode finds which of pids serves node id: bin/run.sh writes each node's output to
// server.<id>.out, whose ready line names the node.
func pidOfNode(t *testing.T, dir string, pids []int, id int) int {
	t.Helper()
	for _, p := range pids {
		b, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p))
		if err != nil {
			continue
		}
		args := strings.Split(string(b), "\x00")
		for i, a := range args {
			if a == "-id" && i+1 < len(args) && args[i+1] == strconv.Itoa(id) {
				return p
			}
		}
	}
	t.Fatalf("no process of node %d among %v", id, pids)
	return 0
}

// promtool finds promtool, or skips unless STRATUS_REQUIRE_PROMTOOL is set.
func promtool(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("promtool"); err == nil {
		return p
	}
	if os.Getenv("STRATUS_REQUIRE_PROMTOOL") != "" {
		t.Fatal("STRATUS_REQUIRE_PROMTOOL is set but promtool was not found (apt-get install prometheus)")
	}
	t.Skip("no promtool found (apt-get install prometheus); set STRATUS_REQUIRE_PROMTOOL=1 to make this a failure")
	return ""
}

// metricValue returns the value of the sample whose name and labels start with prefix.
func metricValue(text, prefix string) (float64, error) {
	sc := bufio.NewScanner(strings.NewReader(text))
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, prefix) {
			f := strings.Fields(line)
			return strconv.ParseFloat(f[len(f)-1], 64)
		}
	}
	return 0, errors.New("no sample " + prefix)
}

// TestMetricsPassPromtool: every node's /metrics of a running server -sim passes promtool check
// metrics, and its counters increase under client load.
func TestMetricsPassPromtool(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end run of the binaries")
	}
	tool := promtool(t)
	dir := t.TempDir()
	urls := writeCluster(t, dir, nil)
	srv := startServer(t, dir, "s-hs")
	defer stopServer(t, srv)

	check := func(body []byte) {
		t.Helper()
		cmd := exec.Command(tool, "check", "metrics")
		cmd.Stdin = strings.NewReader(string(body))
		out, err := cmd.CombinedOutput()
		require.NoError(t, err, "promtool check metrics:\n%s", out)
	}
	before := string(get(t, urls[0]+"/metrics"))
	check([]byte(before))
	counters := []string{
		`stratus_committed_transactions_total{node="1",protocol="s-hs"}`,
		`stratus_committed_blocks_total{node="1",protocol="s-hs"}`,
		`stratus_sent_bytes_total{msg_type="MicroBlock",node="1",protocol="s-hs"}`,
		`stratus_latency_seconds_count{node="1",protocol="s-hs"}`,
	}
	client := exec.Command(filepath.Join(binDir, "client"), "-duration", "3s", "-log_dir", dir, "-out", filepath.Join(dir, "summary.json"))
	client.Dir = dir
	client.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	out, err := client.CombinedOutput()
	require.NoError(t, err, "client: %s", out)
	for i, u := range urls {
		after := string(get(t, u+"/metrics"))
		check([]byte(after))
		require.Contains(t, after, fmt.Sprintf(`stratus_node_info{byzantine="",engine="hotstuff",mem_type="stratus",n="4",node="%d",protocol="s-hs"} 1`, i+1))
		require.Contains(t, after, "# TYPE stratus_committed_transactions_total counter")
		require.Contains(t, after, "# TYPE stratus_latency_seconds summary")
		if i > 0 {
			continue
		}
		for _, c := range counters {
			now, err := metricValue(after, c)
			require.NoError(t, err)
			was, _ := metricValue(before, c) // absent before any traffic: 0
			require.Greater(t, now, was, c)
		}
	}
}
