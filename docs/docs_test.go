package docs

import (
	"bufio"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"unicode"
)

// The repository's root, seen from this package's directory.
const root = ".."

// The documents that code and pages cite by section.
var cited = []string{"docs/spec.md", "docs/design.md"}

var (
	// A numbered heading: "## 2. Protocols", "### 2.1 System model".
	sectionHeading = regexp.MustCompile(`^#{1,6}\s+(\d+(?:\.\d+)*)\.?\s`)
	// A citation: the document (docs/spec.md, or spec.md in the pages beside it), then one
	// section, a list of sections ("§N, §M", "§N and §M") or a range ("§N–M").
	citation = regexp.MustCompile(`\b(?:docs/)?(spec|design)\.md §(\d+(?:\.\d+)*)((?:(?:,\s*|\s+and\s+|,\s*and\s+)§\d+(?:\.\d+)*|[–-]\d+(?:\.\d+)*)*)`)
	listItem = regexp.MustCompile(`(\d+(?:\.\d+)*)`)
	// A section sign with a number that no citation above covers.
	bareSection = regexp.MustCompile(`§\s?\d`)
	// The old forms, which did not name the file. Spelt in pieces so that this file does not
	// match them itself.
	oldForm = regexp.MustCompile(`\b(` + "SP" + `EC|` + "DES" + `IGN)(\.md)? §|\b(` + "SP" + `EC|` + "DES" + `IGN)\.md\b`)
)

// scanned reports whether a file is one the citation check reads.
func scanned(path string) bool {
	base := filepath.Base(path)
	switch filepath.Ext(base) {
	case ".go", ".sh", ".md":
		return true
	}
	return base == "Makefile"
}

// skippedDir reports directories that hold no sources: version control and run artefacts.
func skippedDir(rel string, d fs.DirEntry) bool {
	name := d.Name()
	if rel != "." && strings.HasPrefix(name, ".") {
		return true
	}
	switch filepath.ToSlash(rel) {
	case "bin/logs", "e2e/artifacts", "deploy/results", "results", "bin/results":
		return true
	}
	return false
}

// sourceFiles lists the files the citation check reads, relative to the root.
func sourceFiles(t *testing.T) []string {
	t.Helper()
	var files []string
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if d.IsDir() {
			if skippedDir(rel, d) {
				return filepath.SkipDir
			}
			return nil
		}
		if scanned(path) {
			files = append(files, filepath.ToSlash(rel))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// sections returns the section numbers of a document's numbered headings.
func sections(t *testing.T, doc string) map[string]bool {
	t.Helper()
	out := make(map[string]bool)
	for _, h := range headings(t, doc) {
		if m := sectionHeading.FindStringSubmatch(h.line); m != nil {
			out[m[1]] = true
		}
	}
	if len(out) == 0 {
		t.Fatalf("%s has no numbered sections", doc)
	}
	return out
}

type heading struct {
	line string // the heading line as written
	text string // its text, without the leading #s
}

// headings lists the markdown headings of a file, outside fenced code blocks.
func headings(t *testing.T, rel string) []heading {
	t.Helper()
	var out []heading
	forEachLine(t, rel, func(_ int, line string, fenced bool) {
		if fenced || !strings.HasPrefix(line, "#") {
			return
		}
		text := strings.TrimLeft(line, "#")
		if !strings.HasPrefix(text, " ") {
			return
		}
		text = strings.TrimSpace(strings.TrimRight(strings.TrimSpace(text), "#"))
		out = append(out, heading{line: line, text: text})
	})
	return out
}

// forEachLine calls f with every line of a file (numbered from 1) and whether it lies inside a
// fenced code block of a markdown file.
func forEachLine(t *testing.T, rel string, f func(n int, line string, fenced bool)) {
	t.Helper()
	file, err := os.Open(filepath.Join(root, filepath.FromSlash(rel)))
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	md := strings.HasSuffix(rel, ".md")
	fenced := false
	sc := bufio.NewScanner(file)
	sc.Buffer(make([]byte, 1<<20), 1<<24)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if md && strings.HasPrefix(strings.TrimSpace(line), "```") {
			fenced = !fenced
			f(n, line, true)
			continue
		}
		f(n, line, md && fenced)
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("%s: %v", rel, err)
	}
}

// citationProblems returns one message per citation in rel that does not resolve, "file:line:
// what is wrong". secs holds the sections of each cited document.
func citationProblems(t *testing.T, rel string, secs map[string]map[string]bool) []string {
	t.Helper()
	var problems []string
	self := ""
	if slices.Contains(cited, rel) {
		self = rel // a bare §N in a cited document refers to that document
	}
	forEachLine(t, rel, func(n int, line string, _ bool) {
		where := fmt.Sprintf("%s:%d", rel, n)
		if m := oldForm.FindString(line); m != "" {
			problems = append(problems, fmt.Sprintf("%s: %q does not name the file: cite docs/spec.md §N or docs/design.md §N", where, m))
		}
		covered := make([]bool, len(line))
		for _, loc := range citation.FindAllStringSubmatchIndex(line, -1) {
			doc := "docs/" + line[loc[2]:loc[3]] + ".md"
			for i := loc[0]; i < loc[1]; i++ {
				covered[i] = true
			}
			for _, num := range listItem.FindAllString(line[loc[4]:loc[1]], -1) {
				if !secs[doc][num] {
					problems = append(problems, fmt.Sprintf("%s: %s §%s: no such section in %s", where, doc, num, doc))
				}
			}
		}
		for _, loc := range bareSection.FindAllStringIndex(line, -1) {
			if covered[loc[0]] {
				continue
			}
			num := listItem.FindString(line[loc[0]:])
			switch {
			case self == "":
				problems = append(problems, fmt.Sprintf("%s: §%s does not name the document: cite docs/spec.md §%s or docs/design.md §%s", where, num, num, num))
			case !secs[self][num]:
				problems = append(problems, fmt.Sprintf("%s: §%s: no such section in %s", where, num, self))
			}
		}
	})
	return problems
}

// TestCitationsResolve checks that every citation of the specification or the design, in every
// Go, shell and markdown file and Makefile, names an existing section of the document it names.
func TestCitationsResolve(t *testing.T) {
	secs := make(map[string]map[string]bool)
	for _, doc := range cited {
		secs[doc] = sections(t, doc)
	}
	files := sourceFiles(t)
	if len(files) < 50 {
		t.Fatalf("found only %d files to scan under %s", len(files), root)
	}
	citations := 0
	for _, rel := range files {
		forEachLine(t, rel, func(_ int, line string, _ bool) {
			citations += len(citation.FindAllString(line, -1))
		})
		for _, p := range citationProblems(t, rel, secs) {
			t.Error(p)
		}
	}
	if citations == 0 {
		t.Error("no citation of docs/spec.md or docs/design.md found: is the scan reading the files?")
	}
}

// markdownFiles lists README.md and the pages under docs/, relative to the root.
func markdownFiles(t *testing.T) []string {
	t.Helper()
	files := []string{"README.md"}
	pages, err := filepath.Glob(filepath.Join(root, "docs", "*.md"))
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range pages {
		rel, _ := filepath.Rel(root, p)
		files = append(files, filepath.ToSlash(rel))
	}
	return files
}

// Anchor returns the anchor GitHub gives a heading: lowercase, spaces to '-', and every other
// character but letters, digits, '-' and '_' removed.
func Anchor(text string) string {
	var b strings.Builder
	for _, r := range strings.ToLower(text) {
		switch {
		case r == ' ':
			b.WriteRune('-')
		case r == '-' || r == '_' || unicode.IsLetter(r) || unicode.IsDigit(r):
			b.WriteRune(r)
		}
	}
	return b.String()
}

// anchors returns the anchors of a markdown file's headings; a repeated heading gets "-1", "-2",
// … as on GitHub.
func anchors(t *testing.T, rel string) map[string]bool {
	t.Helper()
	out := make(map[string]bool)
	seen := make(map[string]int)
	for _, h := range headings(t, rel) {
		a := Anchor(h.text)
		if k := seen[a]; k > 0 {
			out[fmt.Sprintf("%s-%d", a, k)] = true
		} else {
			out[a] = true
		}
		seen[a]++
	}
	return out
}

var (
	// An inline link or image: [text](target) or [text](target "title").
	mdLink = regexp.MustCompile(`\]\(([^)\s]+)(?:\s+"[^"]*")?\)`)
	// An inline code span, whose content is not markdown.
	codeSpan = regexp.MustCompile("`[^`]*`")
	scheme   = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9+.-]*:`)
)

// linkProblems returns one message per relative link of a markdown file that points at no file
// inside the repository, or at no heading of the file it names.
func linkProblems(t *testing.T, rel string, anchorsOf func(string) map[string]bool) []string {
	t.Helper()
	var problems []string
	absRoot, err := filepath.Abs(root)
	if err != nil {
		t.Fatal(err)
	}
	forEachLine(t, rel, func(n int, line string, fenced bool) {
		if fenced {
			return
		}
		line = codeSpan.ReplaceAllString(line, "``")
		for _, m := range mdLink.FindAllStringSubmatch(line, -1) {
			target := m[1]
			if scheme.MatchString(target) {
				continue // http:, https:, mailto:
			}
			where := fmt.Sprintf("%s:%d", rel, n)
			path, frag, _ := strings.Cut(target, "#")
			dest := rel
			if path != "" {
				dest = filepath.ToSlash(filepath.Join(filepath.Dir(rel), filepath.FromSlash(path)))
				abs, err := filepath.Abs(filepath.Join(root, filepath.FromSlash(dest)))
				if err != nil || !strings.HasPrefix(abs+string(filepath.Separator), absRoot+string(filepath.Separator)) {
					problems = append(problems, fmt.Sprintf("%s: link %q leaves the repository", where, target))
					continue
				}
				if _, err := os.Stat(abs); err != nil {
					problems = append(problems, fmt.Sprintf("%s: link %q: no file %s", where, target, dest))
					continue
				}
			}
			if frag == "" {
				continue
			}
			if !strings.HasSuffix(dest, ".md") {
				problems = append(problems, fmt.Sprintf("%s: link %q: an anchor into %s, which is not markdown", where, target, dest))
				continue
			}
			if !anchorsOf(dest)[frag] {
				problems = append(problems, fmt.Sprintf("%s: link %q: %s has no heading with anchor #%s", where, target, dest, frag))
			}
		}
	})
	return problems
}

// TestLinksResolve checks that every relative link in README.md and docs/*.md points at a file of
// the repository and, with an anchor, at a heading of that file.
func TestLinksResolve(t *testing.T) {
	cache := make(map[string]map[string]bool)
	anchorsOf := func(rel string) map[string]bool {
		if a, ok := cache[rel]; ok {
			return a
		}
		a := anchors(t, rel)
		cache[rel] = a
		return a
	}
	for _, rel := range markdownFiles(t) {
		for _, p := range linkProblems(t, rel, anchorsOf) {
			t.Error(p)
		}
	}
}

// TestAnchor pins the anchor rule on headings of the kinds the pages use.
func TestAnchor(t *testing.T) {
	for text, want := range map[string]string{
		"Testing on one machine": "testing-on-one-machine",
		"The paper's experiments in virtual time (`server -virtual`)": "the-papers-experiments-in-virtual-time-server--virtual",
		"Security: what a peer or a stranger can make a replica pay":  "security-what-a-peer-or-a-stranger-can-make-a-replica-pay",
		"2.1 System model": "21-system-model",
		"3.3 stratus — Provably Available Broadcast (PAB)": "33-stratus--provably-available-broadcast-pab",
		"HTTP API (every node)":                            "http-api-every-node",
	} {
		if got := Anchor(text); got != want {
			t.Errorf("Anchor(%q) = %q, want %q", text, got, want)
		}
	}
}
