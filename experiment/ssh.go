package experiment

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/stratusbft/stratus/benchmark"
)

// sshSettings is the deploy/ settings file of the ssh backend's cluster, absolute: the command
// line's, else the spec's (relative to the spec).
func (s *Spec) sshSettings(opts Options) (string, error) {
	path := opts.SSH
	if path == "" && s.SSH.Settings != "" {
		path = s.file(s.SSH.Settings)
	}
	if path == "" {
		return "", errors.New("the ssh backend needs the cluster's deploy/ settings file: ssh.settings in the spec, or -ssh")
	}
	path, err := filepath.Abs(path)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("ssh settings: %w", err)
	}
	return path, nil
}

// deployDir is the directory of the deploy/ scripts, absolute.
func deployDir(opts Options) (string, error) {
	dir := opts.Deploy
	if dir == "" {
		dir = filepath.Join(filepath.Dir(filepath.Clean(opts.Bin)), "deploy")
	}
	dir, err := filepath.Abs(dir)
	if err != nil {
		return "", err
	}
	if _, err := os.Stat(filepath.Join(dir, "lib.sh")); err != nil {
		return "", fmt.Errorf("the deploy/ scripts are not in %s (-deploy names their directory)", dir)
	}
	return dir, nil
}

// sshRun is one point on the ssh backend: the deploy/ scripts, run with the user's settings and
// this point's overrides.
type sshRun struct {
	dir, deploy string
	env         []string
}

// script runs deploy/NAME with args, its output in the run's log deploy.out.
func (r *sshRun) script(ctx context.Context, name string, args ...string) error {
	log, err := os.OpenFile(filepath.Join(r.dir, "deploy.out"), os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	defer log.Close()
	fmt.Fprintf(log, "== deploy/%s %s\n", name, strings.Join(args, " "))
	cmd := exec.CommandContext(ctx, filepath.Join(r.deploy, name), args...)
	cmd.Env = append(os.Environ(), r.env...)
	cmd.Stdout, cmd.Stderr = log, log
	// The script and its ssh jobs are one process group, ended together if the run is cancelled.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM) }
	cmd.WaitDelay = 30 * time.Second
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("deploy/%s: %v (see %s)", name, err, filepath.Join(r.dir, "deploy.out"))
	}
	return nil
}

// hosts lists the cluster's replicas, "ssh-address address" a line, as the deploy/ scripts read
// them from the settings' host files.
func (r *sshRun) hosts(ctx context.Context) ([]string, int, error) {
	cmd := exec.CommandContext(ctx, "bash", "-c", `source "$1" && load_settings && load_hosts &&
		for ((i = 1; i <= N; i++)); do printf '%s %s\n' "${PUB[i]}" "${IP[i]}"; done && echo "clients ${#CLIENT_HOSTS[@]}"`,
		"hosts", filepath.Join(r.deploy, "lib.sh"))
	cmd.Env = append(os.Environ(), r.env...)
	out, err := cmd.Output()
	if err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return nil, 0, fmt.Errorf("reading the cluster's host files: %s", strings.TrimSpace(string(ee.Stderr)))
		}
		return nil, 0, err
	}
	var lines []string
	clientHosts := 0
	sc := bufio.NewScanner(strings.NewReader(string(out)))
	for sc.Scan() {
		if n, ok := strings.CutPrefix(sc.Text(), "clients "); ok {
			clientHosts, _ = strconv.Atoi(n)
			continue
		}
		lines = append(lines, sc.Text())
	}
	return lines, clientHosts, nil
}

// runSSH runs a point on a cluster of real hosts through the deploy/ scripts, as a user would
// by hand: the first N replicas of the settings' host files, with this point's config (its knobs
// and the network as shaping), keys per N kept in the results, deploy.sh, start_server.sh
// --fresh, the warm-up clients and then the measured ones on every client host
// (start_client.sh --wait, tcp.clients per host), collect.sh (every host's logs, each replica's
// /query and the clients' merged summary into the run's directory), and exp_stop.sh, which
// stops every client and replica and clears the stores whatever happened before.
func (s *Spec) runSSH(ctx context.Context, p Point, row *Row, opts Options) error {
	settings, err := s.sshSettings(opts)
	if err != nil {
		return err
	}
	deploy, err := deployDir(opts)
	if err != nil {
		return err
	}
	dir, err := filepath.Abs(filepath.Join(opts.Out, s.Name, "runs", p.Key))
	if err != nil {
		return err
	}
	if err := os.RemoveAll(dir); err != nil {
		return err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	r := &sshRun{dir: dir, deploy: deploy, env: []string{"STRATUS_DEPLOY_SETTINGS=" + settings}}
	all, clientHosts, err := r.hosts(ctx)
	if err != nil {
		return err
	}
	if len(all) < p.N {
		return fmt.Errorf("the cluster of %s has %d replicas; this point needs %d", settings, len(all), p.N)
	}
	if clientHosts == 0 {
		return fmt.Errorf("the cluster of %s has no client host (its clients file is empty or missing)", settings)
	}
	var pub, ips strings.Builder
	for _, l := range all[:p.N] {
		a, b, _ := strings.Cut(l, " ")
		fmt.Fprintln(&pub, a)
		fmt.Fprintln(&ips, b)
	}
	for name, data := range map[string]string{"pub_ips.txt": pub.String(), "ips.txt": ips.String()} {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(data), 0o644); err != nil {
			return err
		}
	}
	cfg, err := s.pointConfig(p)
	if err != nil {
		return err
	}
	cfgPath, cfgJSON, err := writeConfig(cfg, dir)
	if err != nil {
		return err
	}
	keys, err := filepath.Abs(filepath.Join(opts.Out, s.Name, fmt.Sprintf("keys-n%d", p.N)))
	if err != nil {
		return err
	}
	var ov strings.Builder
	ov.WriteString("# this point's settings, read after the cluster's (written by stratus-exp)\n")
	for _, kv := range [][2]string{{"PUB_IPS", filepath.Join(dir, "pub_ips.txt")}, {"IPS", filepath.Join(dir, "ips.txt")},
		{"CONFIG", cfgPath}, {"KEYS_DIR", keys}, {"ALGORITHM", p.Algorithm}} {
		fmt.Fprintf(&ov, "%s=%s\n", kv[0], shellQuote(kv[1]))
	}
	if len(s.TCP.Flags) > 0 {
		ov.WriteString("SERVER_FLAGS+=(")
		for _, f := range s.TCP.Flags {
			ov.WriteString(" " + shellQuote(f))
		}
		ov.WriteString(" )\n")
	}
	overrides := filepath.Join(dir, "overrides.sh")
	if err := os.WriteFile(overrides, []byte(ov.String()), 0o644); err != nil {
		return err
	}
	r.env = append(r.env, "STRATUS_DEPLOY_OVERRIDES="+overrides, "ALGORITHM="+p.Algorithm)

	// exp_stop.sh stops whatever ran, also after a failure or a cancelled run.
	defer func() {
		stopCtx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		_ = r.script(stopCtx, "exp_stop.sh")
	}()
	if err := r.script(ctx, "deploy.sh"); err != nil {
		return err
	}
	if err := r.script(ctx, "start_server.sh", "--fresh"); err != nil {
		return err
	}
	perHost := s.TCP.Clients
	if perHost == 0 {
		perHost = 4
	}
	clientArgs := append([]string{"-log_level", "warn"}, s.clientFlags(p, perHost*clientHosts)...)
	if w := p.Warmup.D(); w >= time.Second {
		if err := r.script(ctx, "start_client.sh", append([]string{"--wait", strconv.Itoa(perHost), "-duration", w.String()}, clientArgs...)...); err != nil {
			return fmt.Errorf("warm-up clients: %w", err)
		}
	}
	measured := p.Duration.D() - p.Warmup.D()
	if err := r.script(ctx, "start_client.sh", append([]string{"--wait", strconv.Itoa(perHost), "-duration", measured.String()}, clientArgs...)...); err != nil {
		return err
	}
	results := filepath.Join(dir, "results")
	if err := r.script(ctx, "collect.sh", results); err != nil {
		return err
	}
	data, err := os.ReadFile(filepath.Join(results, "clients.json"))
	if err != nil {
		return fmt.Errorf("no merged client summary: %w", err)
	}
	var sum benchmark.Result
	if err := json.Unmarshal(data, &sum); err != nil {
		return fmt.Errorf("%s: %w", filepath.Join(results, "clients.json"), err)
	}
	replicas := map[string]json.RawMessage{}
	for i := 1; i <= p.N; i++ {
		if q, err := os.ReadFile(filepath.Join(results, fmt.Sprintf("node%d.json", i))); err == nil && json.Valid(q) {
			replicas[strconv.Itoa(i)] = q
		}
	}
	row.Config = map[string]any{"config": json.RawMessage(cfgJSON), "settings": settings, "hosts": all[:p.N],
		"server_flags": s.TCP.Flags, "client_flags": clientArgs, "clients_per_host": perHost, "client_hosts": clientHosts}
	return s.clientRow(p, row, &sum, replicas, measured)
}

// shellQuote quotes v for bash: single quotes, each single quote in v written as '\”.
func shellQuote(v string) string { return "'" + strings.ReplaceAll(v, "'", `'\''`) + "'" }
