package simnet

import (
	"fmt"

	"github.com/cockroachdb/pebble/v2/vfs"
	"github.com/cockroachdb/pebble/v2/vfs/errorfs"

	"github.com/stratusbft/stratus/replica"
	"github.com/stratusbft/stratus/replica/core"
	"github.com/stratusbft/stratus/types"
)

// Disk is a replica's simulated disk: a memory file system that keeps, across a crash, exactly
// what was synced, under the replica's real Pebble store. Inject, when set, makes file
// operations fail (package errorfs): the store fails as a disk would, at any step of a write.
type Disk struct {
	FS     *vfs.MemFS
	Inject errorfs.Injector
	// OnlyOnce turns Inject off after the first crash, so the replica can come back.
	OnlyOnce bool
}

// NewDisk returns an empty disk.
func NewDisk() *Disk { return &Disk{FS: vfs.NewCrashableMem()} }

func (d *Disk) open(id types.NodeID) (*replica.PebbleStore, error) {
	var fs vfs.FS = d.FS
	if d.Inject != nil {
		fs = errorfs.Wrap(d.FS, d.Inject)
	}
	st, err := replica.OpenPebbleStoreFS(fmt.Sprintf("store.%d", id), fs)
	if err != nil {
		return nil, err
	}
	return st, nil
}

// crash keeps what was synced: the disk becomes a copy of its synced state, and the store that
// ran on the old one is closed there (what closing writes is lost with it).
func (d *Disk) crash(st core.Store) {
	old := d.FS
	d.FS = old.CrashClone(vfs.CrashCloneCfg{})
	if d.OnlyOnce {
		d.Inject = nil
	}
	if st != nil {
		_ = st.Close()
	}
}
