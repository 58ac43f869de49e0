// Package e2e runs the real binaries and scripts: server -sim with real client processes, and the
// bin/ scripts a user types. Every run uses free loopback ports and its own directory, and stops
// exactly the processes it started.
//
// Its tests build bin/server and bin/client and check what a user sees: client summaries and both
// /query forms for every engine and preset, Byzantine replicas in server -sim, run.sh clusters over
// TCP, restarts from the stores, fault injection over HTTP, key refusals, configuration checks and
// migration, duplicates and PUT commands, the dashboard in a headless browser and /metrics under
// promtool, and one nemesis run. -short skips them.
//
// The package has no code outside its tests. See docs/testing.md and docs/design.md §9.
package e2e
