//go:build !linux

package hugemem

// mapRegion returns nil: elsewhere the Arena's slices come from Go's heap.
func mapRegion(int) []byte { return nil }

func unmapRegion([]byte) {}
