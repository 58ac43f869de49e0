package main

import (
	"bytes"
	"errors"
	"flag"
	"os"
	"os/exec"
	"os/signal"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"unicode/utf8"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"
)

var (
	registerOnce sync.Once
	libraryFlags map[string]bool // registered before run: glog's
	serverFlags  *flag.FlagSet   // every flag of server, without the test binary's -test.*
)

// registered runs run once, with an argument it refuses right after parsing, so that it
// registers its flags in flag.CommandLine and starts nothing. It returns those flags and the
// names of the ones a library (glog) registered before.
func registered(t *testing.T) (*flag.FlagSet, map[string]bool) {
	t.Helper()
	registerOnce.Do(func() {
		libraryFlags = map[string]bool{}
		flag.VisitAll(func(f *flag.Flag) { libraryFlags[f.Name] = true })
		args := os.Args
		os.Args = []string{"server", "unexpected-argument"}
		code := run()
		os.Args = args
		signal.Reset(syscall.SIGINT, syscall.SIGTERM)
		if code != 2 {
			panic("run with an unexpected argument did not stop at it")
		}
		serverFlags = flag.NewFlagSet("server", flag.ContinueOnError)
		flag.VisitAll(func(f *flag.Flag) {
			if !strings.HasPrefix(f.Name, "test.") {
				serverFlags.Var(f.Value, f.Name, f.Usage)
			}
		})
		for name := range libraryFlags {
			if strings.HasPrefix(name, "test.") {
				delete(libraryFlags, name)
			}
		}
	})
	return serverFlags, libraryFlags
}

var (
	headingLine = regexp.MustCompile(`^(\S.*):$`)
	flagLine    = regexp.MustCompile(`^  -([^\s=]+)`)
)

// helpEntry is one flag of the help: its group and its lines.
type helpEntry struct {
	group string
	text  string
}

// parseHelp splits server -h into its headings, in order, and its flags.
func parseHelp(t *testing.T, help string) (headings []string, entries map[string][]helpEntry) {
	t.Helper()
	entries = map[string][]helpEntry{}
	group, name := "", ""
	for _, line := range strings.Split(strings.TrimSuffix(help, "\n"), "\n") {
		if m := headingLine.FindStringSubmatch(line); m != nil {
			group, name = m[1], ""
			headings = append(headings, group)
			continue
		}
		if group == "" {
			continue // the synopsis
		}
		if m := flagLine.FindStringSubmatch(line); m != nil {
			name = m[1]
			entries[name] = append(entries[name], helpEntry{group: group})
		}
		require.NotEmpty(t, name, "a line of server -h outside a flag: %q", line)
		e := &entries[name][len(entries[name])-1]
		e.text += line + "\n"
	}
	return headings, entries
}

func TestUsageGroupsEveryFlagOnce(t *testing.T) {
	fs, glogFlags := registered(t)
	var buf bytes.Buffer
	printUsage(&buf, fs)
	help := buf.String()
	require.True(t, strings.HasPrefix(help, synopsis), "server -h starts with the synopsis")

	headings, entries := parseHelp(t, help)
	want := make([]string, len(usageGroups))
	for i, g := range usageGroups {
		want[i] = g.title
	}
	require.Equal(t, want, headings, "the groups in order, no \"other\" group: every flag is in a group")
	assert.True(t, strings.HasPrefix(headings[0], "common"), headings[0])
	assert.True(t, strings.HasPrefix(headings[1], "-sim"), headings[1])
	assert.True(t, strings.HasPrefix(headings[2], "-id"), headings[2])
	assert.True(t, strings.HasPrefix(headings[3], "-virtual"), headings[3])
	assert.True(t, strings.HasPrefix(headings[4], "tools"), headings[4])
	logging := headings[len(headings)-1]
	assert.True(t, strings.HasPrefix(logging, "logging (glog"), "logging last: %s", logging)

	fs.VisitAll(func(f *flag.Flag) {
		e := entries[f.Name]
		if !assert.Len(t, e, 1, "-%s is in server -h exactly once", f.Name) {
			return
		}
		assert.LessOrEqual(t, strings.Count(e[0].text, "(default"), 1, "-%s states one default:\n%s", f.Name, e[0].text)
		if glogFlags[f.Name] && f.Name != "log_dir" { // -log_dir also places server.<pid>.log
			assert.Equal(t, logging, e[0].group, "glog's -%s is under logging", f.Name)
		}
	})
	for name := range entries {
		assert.NotNil(t, fs.Lookup(name), "server -h lists -%s, which is not a flag", name)
	}
	for _, g := range usageGroups {
		for _, u := range g.flags {
			assert.NotNil(t, fs.Lookup(u.name), "group %q lists -%s, which is not a flag", g.title, u.name)
		}
	}

	for _, line := range strings.Split(help, "\n") {
		assert.LessOrEqual(t, utf8.RuneCountInString(line), usageWidth, "too long: %q", line)
		assert.LessOrEqual(t, strings.Count(line, "(default"), 1, "two defaults: %q", line)
	}
	// Sentinels and zero values are no defaults.
	assert.False(t, strings.Contains(help, "-1ns"), "a -1ns default in server -h")
	assert.False(t, strings.Contains(help, "(default -1)"), "a -1 default in server -h")
	assert.NotContains(t, entries["id"][0].text, "(default")
	assert.Contains(t, entries["batch_timeout"][0].text, "(default 5s)")
	assert.Contains(t, entries["config"][0].text, `(default "config.json")`)
	assert.Contains(t, entries["fit"][0].text, "(default true)")
}

// A flag that no group lists still shows, before logging.
func TestUsageShowsUngroupedFlag(t *testing.T) {
	fs, _ := registered(t)
	withNew := flag.NewFlagSet("server", flag.ContinueOnError)
	fs.VisitAll(func(f *flag.Flag) { withNew.Var(f.Value, f.Name, f.Usage) })
	withNew.Int("brand_new", 3, "a flag no group lists yet")
	var buf bytes.Buffer
	printUsage(&buf, withNew)
	headings, entries := parseHelp(t, buf.String())
	require.Len(t, headings, len(usageGroups)+1)
	assert.Equal(t, "other", headings[len(headings)-2])
	assert.True(t, strings.HasPrefix(headings[len(headings)-1], "logging"))
	require.Len(t, entries["brand_new"], 1)
	assert.Equal(t, "other", entries["brand_new"][0].group)
	assert.Contains(t, entries["brand_new"][0].text, "-brand_new int")
	assert.Contains(t, entries["brand_new"][0].text, "(default 3)")
}

// server -h prints the help on standard error and exits 0.
func TestHelpExitsZero(t *testing.T) {
	if os.Getenv("STRATUS_SERVER_HELP") == "1" {
		os.Args = []string{"server", "-h"}
		os.Exit(run()) // flag.Parse exits on -h
	}
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelpExitsZero$")
	cmd.Env = append(os.Environ(), "STRATUS_SERVER_HELP=1")
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	err := cmd.Run()
	var exit *exec.ExitError
	if errors.As(err, &exit) {
		t.Fatalf("server -h: exit code %d, want 0; stderr:\n%s", exit.ExitCode(), stderr.String())
	}
	require.NoError(t, err)
	assert.True(t, strings.HasPrefix(stderr.String(), "usage: server -sim"), stderr.String())
	assert.Contains(t, stderr.String(), "\nlogging (glog, verbose protocol tracing):\n")
}
