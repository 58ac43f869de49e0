// Package docs holds the project's documentation — the specification (spec.md), the design
// (design.md) and the user's pages — and the test that keeps it honest: every citation of a
// section (docs/spec.md §N, docs/design.md §N) in the repository's Go, shell and markdown files and
// Makefile must name an existing section, and every relative link in README.md and docs/*.md must
// point at an existing file and heading. It has no code; see docs/design.md §9.
package docs
